"""The Evaluator: metric keys, what each task computes and gates, custom TFMA metrics."""
