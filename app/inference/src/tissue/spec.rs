//! The "tissue_em" step's settings, as the manifest gives them, and their checks.

use super::atlas;

/// Settings of the "tissue_em" step (the manifest's `tissue_em` section).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct TissueEmSpec {
    /// Exponent on the network's probabilities used as the spatial prior (0–1).
    pub prior_weight: f64,
    /// Potts MRF strength per neighbour at 1 mm (0 = none).
    pub mrf_beta: f64,
    /// Smoothness of the bias field: the Gaussian's sigma in mm (0 = no bias field).
    pub bias_sigma_mm: f64,
    /// EM rounds.
    pub iterations: usize,
    /// Deep grey matter as its own Gaussian (SAMSEG models each deep structure apart): the
    /// depth range (mm from the brain's surface) over which the grey-matter prior moves from
    /// the cortical component to the deep one. Deep grey matter (thalamus, basal ganglia) is
    /// brighter than cortex on T1, between grey and white matter, and a single grey-matter
    /// Gaussian leaves it to white matter. None: one grey-matter component.
    #[serde(default)]
    pub deep_gm_mm: Option<[f64; 2]>,
    /// Deep grey matter placed by an atlas instead of by depth: the deep component's share of
    /// the grey- *and* white-matter prior is the atlas's weighted probability (the network
    /// gives these nuclei more white than grey). Takes precedence over `deep_gm_mm`.
    #[serde(default)]
    pub deep_gm_atlas: Option<atlas::DeepGmAtlasSpec>,
    /// Voxels this many spreads (the fit's shared spread) from every tissue and two-tissue
    /// mixture are left out of the tissues' statistics and the bias field from the third round
    /// on: a lesion then neither moves the tissues' means nor is taken for a bias. None: every
    /// voxel counts (3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_outliers: Option<f64>,
    /// Fluid at the end of the values where the fluid rim's step found it on the whole brain,
    /// and a tail at the other end set aside (see [`super::fit_tissue`]; a candidate, 3.3.1).
    /// False: fluid is the fit's own class farthest from the median (3.3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fluid_end_from_rim: bool,
    /// On a series acquired with contrast whose fluid is dark (a T1), grey matter is the darker
    /// of the two classes that are not fluid, not the one the network leans grey on: trained on
    /// unenhanced scans, it leans either way there (a candidate, 3.3.2). False: the network's
    /// lean decides (3.3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contrast_grey_darker: bool,
    #[serde(default)]
    pub description: Option<String>,
}

impl TissueEmSpec {
    /// Why these settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !(self.prior_weight.is_finite() && (0.0..=1.0).contains(&self.prior_weight)) {
            return Some(format!("prior_weight {} (0 to 1)", self.prior_weight));
        }
        if !(self.mrf_beta.is_finite() && (0.0..=2.0).contains(&self.mrf_beta)) {
            return Some(format!("mrf_beta {} (0 to 2)", self.mrf_beta));
        }
        if !(self.bias_sigma_mm.is_finite()
            && (self.bias_sigma_mm == 0.0 || (5.0..=200.0).contains(&self.bias_sigma_mm)))
        {
            return Some(format!(
                "bias_sigma_mm {} (0 for none, or 5 to 200)",
                self.bias_sigma_mm
            ));
        }
        if !(1..=200).contains(&self.iterations) {
            return Some(format!("iterations {} (1 to 200)", self.iterations));
        }
        if let Some([a, b]) = self.deep_gm_mm
            && !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b && b <= 100.0)
        {
            return Some(format!("deep_gm_mm [{a}, {b}] (0 ≤ from < to ≤ 100 mm)"));
        }
        if let Some(x) = self.exclude_outliers
            && !(x.is_finite() && (1.0..=20.0).contains(&x))
        {
            return Some(format!("exclude_outliers {x} (1 to 20 spreads)"));
        }
        self.deep_gm_atlas.as_ref().and_then(|a| a.problem())
    }
}
