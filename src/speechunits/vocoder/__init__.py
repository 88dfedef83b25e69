"""Units back to speech: unit -> mel models in front of the pretrained universal HiFi-GAN."""
