pub mod study;
