"""Model families: GPT, ResMLP, ResNet."""
