//! Attention colormaps: 256-entry tables from assets/colormaps, embedded in the binary.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub type Lut = [[u8; 3]; 256];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colormap {
    Inferno,
    Viridis,
    Turbo,
    Jet,
}

impl Colormap {
    pub const ALL: [Colormap; 4] = [Colormap::Inferno, Colormap::Viridis, Colormap::Turbo, Colormap::Jet];

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Inferno => "inferno",
            Colormap::Viridis => "viridis",
            Colormap::Turbo => "turbo",
            Colormap::Jet => "jet",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Colormap::Inferno => include_str!("../../../assets/colormaps/inferno.lut"),
            Colormap::Viridis => include_str!("../../../assets/colormaps/viridis.lut"),
            Colormap::Turbo => include_str!("../../../assets/colormaps/turbo.lut"),
            Colormap::Jet => include_str!("../../../assets/colormaps/jet.lut"),
        }
    }

    /// The table, entry 0 for the lowest value.
    pub fn lut(self) -> &'static Lut {
        static TABLES: OnceLock<Vec<Lut>> = OnceLock::new();
        let tables = TABLES.get_or_init(|| {
            Colormap::ALL
                .iter()
                .map(|c| {
                    parse_lut(c.source()).unwrap_or_else(|e| {
                        tracing::error!("colormap {} is malformed ({e}); using grey", c.name());
                        std::array::from_fn(|i| [i as u8; 3])
                    })
                })
                .collect()
        });
        &tables[self as usize]
    }

    /// The colour for `t` in 0..1 (same rounding as the shader).
    pub fn color(self, t: f32) -> [u8; 3] {
        self.lut()[lut_entry(t)]
    }
}

/// Table entry for a value scaled to 0..1; matches `floor(t * 255 + 0.5)` in slice.wgsl.
pub fn lut_entry(t: f32) -> usize {
    (t.clamp(0.0, 1.0) * 255.0 + 0.5).floor() as usize
}

fn parse_lut(text: &str) -> Result<Lut, String> {
    let mut lut = [[0u8; 3]; 256];
    let mut n = 0;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let slot = lut.get_mut(n).ok_or("more than 256 entries")?;
        let values: Vec<u8> = line
            .split_whitespace()
            .map(|v| v.parse::<u8>().map_err(|e| format!("entry {n}: {e}")))
            .collect::<Result<_, _>>()?;
        *slot = <[u8; 3]>::try_from(values.as_slice()).map_err(|_| format!("entry {n}: not 3 values"))?;
        n += 1;
    }
    if n != 256 {
        return Err(format!("{n} entries, expected 256"));
    }
    Ok(lut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_parses_with_256_entries() {
        for c in Colormap::ALL {
            assert!(parse_lut(c.source()).is_ok(), "{}", c.name());
        }
        // inferno runs dark to light-yellow; jet starts dark blue.
        assert_eq!(Colormap::Inferno.lut()[0], [0, 0, 4]);
        assert!(Colormap::Inferno.lut()[255].iter().map(|&v| u32::from(v)).sum::<u32>() > 600);
        assert!(Colormap::Jet.lut()[0][2] > 100 && Colormap::Jet.lut()[0][0] == 0);
        assert_eq!(lut_entry(0.5), 128);
        assert_eq!(lut_entry(2.0), 255);
    }
}
