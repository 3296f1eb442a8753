"""Triton kernels, each file holding the kernel, its launcher, a PyTorch reference and its benchmark.
Imported only when a kernel is used; run on CPU with TRITON_INTERPRET=1 in tests."""
