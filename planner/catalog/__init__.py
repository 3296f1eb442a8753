"""Facts turned into specs, without torch: model specs from config.json, the model, hardware and workload catalogs, dtypes."""
