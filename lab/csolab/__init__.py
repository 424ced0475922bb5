"""The cso.rds_hardening lab: moto's AWS server with our extensions, and its helpers.

Test infrastructure only; never shipped in the collection tarball.
"""
