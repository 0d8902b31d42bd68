//! The model cache: verified before use, a changed file is an error naming it, never a silent re-fetch.
