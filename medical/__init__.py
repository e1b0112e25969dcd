"""Medical domain pipelines (prostate zones, ProtoECGNet, SepCLR). Built on :mod:`shared`."""
