"""The Pusher: TF Serving's model directory layout (`serving_layout`, shared with `serving`) and the executor that
pushes into it atomically (`executor`)."""
