//! The crypto the functions run, through aws-lc-rs, timed: what a TLS handshake computes (key
//! exchange, a certificate's signature check), and the bulk work (SHA-256 of an object, AES-GCM
//! of TLS records, HMAC of a request). `scripts/bench crypto` builds it twice, as deployed
//! (aws-lc size-optimised: OPENSSL_SMALL) and with aws-lc at opt-level 3, and prints both.
//!
//! Prints one line per operation: its name and the best of 5 rounds' mean time, in µs.

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::signature::{self, KeyPair};
use aws_lc_rs::{aead, agreement, digest, hmac, kem, rand, rsa};

type Res = Result<(), Box<dyn Error>>;

fn time(name: &str, n: u32, mut f: impl FnMut() -> Res) -> Res {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..n {
            f()?;
        }
        best = best.min(start.elapsed().as_secs_f64() / f64::from(n));
    }
    println!("{name}\t{:.1}", best * 1e6);
    Ok(())
}

fn key_exchange(alg: &'static agreement::Algorithm, rng: &rand::SystemRandom) -> Res {
    let ours = agreement::EphemeralPrivateKey::generate(alg, rng)?;
    let theirs = agreement::EphemeralPrivateKey::generate(alg, rng)?;
    let peer = agreement::UnparsedPublicKey::new(alg, theirs.compute_public_key()?.as_ref().to_vec());
    agreement::agree_ephemeral(ours, peer, aws_lc_rs::error::Unspecified, |k| {
        black_box(k);
        Ok(())
    })?;
    Ok(())
}

fn main() -> Res {
    let rng = rand::SystemRandom::new();
    let msg = [7u8; 512];
    time("X25519 key exchange (both sides)", 2000, || key_exchange(&agreement::X25519, &rng))?;
    time("P-256 key exchange (both sides)", 1000, || key_exchange(&agreement::ECDH_P256, &rng))?;
    time("ML-KEM-768 keygen + encapsulate + decapsulate", 1000, || {
        let dk = kem::DecapsulationKey::generate(&kem::ML_KEM_768)?;
        let (ct, _) = dk.encapsulation_key()?.encapsulate()?;
        black_box(dk.decapsulate(ct.as_ref().into())?);
        Ok(())
    })?;
    for (name, signing, verifying, n) in [
        ("ECDSA P-256 verify", &signature::ECDSA_P256_SHA256_ASN1_SIGNING, &signature::ECDSA_P256_SHA256_ASN1, 2000),
        ("ECDSA P-384 verify", &signature::ECDSA_P384_SHA384_ASN1_SIGNING, &signature::ECDSA_P384_SHA384_ASN1, 1000),
    ] {
        let key = signature::EcdsaKeyPair::generate(signing)?;
        let sig = key.sign(&rng, &msg)?;
        let public = signature::UnparsedPublicKey::new(verifying, key.public_key().as_ref().to_vec());
        time(name, n, || Ok(public.verify(&msg, sig.as_ref())?))?;
    }
    let rsa = rsa::KeyPair::generate(rsa::KeySize::Rsa2048)?;
    let mut sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &msg, &mut sig)?;
    let public =
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, rsa.public_key().as_ref().to_vec());
    time("RSA-2048 verify", 5000, || Ok(public.verify(&msg, &sig)?))?;

    let object = vec![1u8; 16 << 20];
    time("SHA-256 of 16 MiB", 5, || {
        black_box(digest::digest(&digest::SHA256, &object));
        Ok(())
    })?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"signing key");
    time("HMAC-SHA256 of 256 B", 100_000, || {
        black_box(hmac::sign(&key, &msg[..256]));
        Ok(())
    })?;
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &[9; 32])?);
    let mut records = vec![0u8; 16 << 20];
    time("AES-256-GCM seal of 16 MiB", 5, || {
        let nonce = aead::Nonce::assume_unique_for_key([0; 12]);
        let tag = key.seal_in_place_separate_tag(nonce, aead::Aad::empty(), &mut records)?;
        black_box(tag.as_ref().len());
        Ok(())
    })?;
    Ok(())
}
