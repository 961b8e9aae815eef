"""Evidence: keys, signed in-toto attestations (DSSE, Sigstore bundle v0.3), CycloneDX BOMs,
verification and the evidence store. One module per stage; nothing heavy is imported here.

    keys / signers      key material, the trust file, signers chosen by URI
    targets / hashing   what is attested and its digests (parallel, sharded, cached)
    manifest / bom      predicates: OpenSSF model-signing v1.0 manifest, CycloneDX 1.6
    statement / dsse / bundle   the wire formats, validated on the way in
    attest / verify     the two tasks
    store               SQLite / PostgreSQL index of every attestation
"""
