"""The lab: real systemd hosts (systemd-nspawn) on one machine, on a private bridge, for tests and demos."""
