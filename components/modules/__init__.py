"""TFX module files, kept in a folder of their own (TFX fingerprints this folder's `.py` files).

They stay thin: each entry point only binds TFX's calling convention to plain functions elsewhere in
`components`, which carry the logic and the unit tests.
"""
