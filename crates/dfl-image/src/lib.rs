//! Raster operations DFL needs exactly: warps, resizes, blurs, morphology, colour spaces, colour transfer, seamless clone.
