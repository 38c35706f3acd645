"""The demo association: synthetic NIRCam exposures with truth, made by image3.synth."""

if DEMO:

    rule demo_data:
        output:
            asn=str(ASN.source),
            cals=[str(m.path) for m in ASN.members],
        params:
            n=config["demo"]["n_exposures"],
            size=config["demo"]["size"],
            seed=config["demo"]["seed"],
        log:
            f"{LOGS}/demo_data.log",
        benchmark:
            f"{BENCH}/demo_data.tsv"
        conda:
            ENV
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/demo_data.py"
