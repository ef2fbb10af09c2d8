"""The Pusher's executor: atomic pushes into TF Serving's model directory."""
