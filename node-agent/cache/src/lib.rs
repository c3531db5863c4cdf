//! The cache data path of a Lastmile node (being built).
