//! DFL's networks on burn: SAEHD (DF/LIAE and variants), Quick96, XSeg, discriminators, losses, optimizers, checkpoints.
