"""The gateway's HTTP side (FastAPI): today the acknowledgement page of the
signed links; the control-room API and page build on it (issue 5)."""
