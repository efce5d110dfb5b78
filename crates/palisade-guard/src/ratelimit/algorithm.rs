//! The arithmetic of each algorithm over plain numbers (to be written).
