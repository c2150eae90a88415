"""Deployment of the trained kernels to mobile, web and server runtimes (issue #14 §2)."""
