//! Strict thresholds and results: unknown metrics refused, missing metrics regress, summaries checked.
