"""nxprovision: validate, plan and run the provisioning of production Nuxeo clusters."""

__version__ = "0.1.0"
