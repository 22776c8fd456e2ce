odk-signature 1
key ed25519 zz
