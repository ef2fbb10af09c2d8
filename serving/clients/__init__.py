"""Clients of the serving contract: `visionline predict` (REST, gRPC, in-process) and `predict-batch` (Beam)."""
