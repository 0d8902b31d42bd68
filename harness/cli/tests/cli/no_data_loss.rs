//! Nothing measured is lost: existing results kept, resume, locks, disk full, signals, bounded inputs.
