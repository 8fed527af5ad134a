"""Model manifest, provisioning from registry packages, export and verification."""
