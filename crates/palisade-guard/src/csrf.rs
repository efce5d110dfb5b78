//! CSRF protection (to be written).
