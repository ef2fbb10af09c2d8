"""visionline test suite."""
