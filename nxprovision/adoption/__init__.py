"""`nxprovision adopt`: a running Nuxeo cluster built by hand, read and written down as an nxprovision inventory."""
