"""What a trained model is made of: parameters and FLOPs, and the BN analysis."""
