"""Attribution graphs with circuit-tracer: loading our models and transcoders, choosing the positions to
explain, exporting Neuronpedia JSON with our labels, scoring and checking the graphs."""
