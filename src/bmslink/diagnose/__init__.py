"""Look at bus traffic like an expert: per-id statistics, profile detection, conformance."""
