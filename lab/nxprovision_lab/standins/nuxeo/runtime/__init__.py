"""Runtime of the Nuxeo stand-in: copied into the distribution as lib/standin/nuxeo_standin."""
