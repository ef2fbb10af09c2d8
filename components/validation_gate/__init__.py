"""The data validation gate: a custom TFX component between ExampleValidator and Transform."""
