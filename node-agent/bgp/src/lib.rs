//! The receive-only BGP speaker of a Lastmile node (being built).
