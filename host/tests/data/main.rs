//! Host integration tests: importing, checking, splitting and caching datasets, on the shared
//! HAM10000 images. One test binary for the area (each binary links libtorch).

mod data_support;

mod data_cache;
mod data_check;
mod data_import;
mod data_split;
mod labelme;
