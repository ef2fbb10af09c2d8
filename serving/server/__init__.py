"""The embedded TF Serving-compatible model server (REST on tornado, gRPC with the official protos)."""
