//! The window's panels: each reads the document and asks for changes (`Edit`s) or work
//! (`Command`s). The study browser and toolbar, the overlay and model panels, the analysis's
//! insights and fusion controls, the review, the PACS window and the tag inspector.

pub mod browser;
pub mod fusion;
pub mod insights;
pub mod model_panel;
pub mod overlays;
pub mod pacs_form;
pub mod pacs_panel;
pub mod review;
pub mod tags;
