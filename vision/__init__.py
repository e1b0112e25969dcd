"""Vision pipelines (PCL-SR contrastive super-resolution). Built on :mod:`shared`."""
