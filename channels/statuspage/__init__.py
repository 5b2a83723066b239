"""The static status page channel: the site model, its rendering, and the folder and S3 targets."""
