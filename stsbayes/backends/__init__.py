"""Backend glue for PyTensor ops that lack a conversion (architecture.md, backend decision)."""
