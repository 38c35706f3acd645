"""skymatch: sky statistics per member in parallel (its own sky and its offsets from its
partners, image3.asn.pair_partners), one small solve for the levels (each member's
sky.json, which the jobs after apply when they read the member)."""


rule sky_statistics:
    input:
        cal=lambda wildcards: cal_path(wildcards.member),
        identity=lambda wildcards: identity_stamp(wildcards.member),
        wcs=lambda wildcards: wcs_sidecar(wildcards.member),
        # SCI and DQ are then read without opening the datamodel
        geometry=lambda wildcards: geometry_sidecar(wildcards.member),
        partners=lambda wildcards: sky_partner_files(wildcards.member),
    output:
        skystats_path("{member}"),
    params:
        member=lambda wildcards: member_row(wildcards.member, layout_files),
        partners=lambda wildcards: [member_row(p, layout_files)
                                    for p in sky_partners(wildcards.member)],
        sky=sky_statistics_params(),
        # the partners' footprints: points this many pixels apart along their edges
        stepsize=config["skymatch"]["stepsize"],
    log:
        f"{LOGS}/sky_statistics/{{member}}.log",
    benchmark:
        f"{BENCH}/sky_statistics/{{member}}.tsv"
    conda:
        ENV
    group:
        "skystats"
    threads: 1
    resources:
        mem_mb=1000,  # measured 283 MB peak for a 2048² exposure (SCI, DQ, overlap masks)
        runtime=10,
    script:
        "../scripts/sky_statistics.py"


# a checkpoint, as tweakreg: a member whose sky level was kept is not redone
checkpoint skymatch:
    input:
        stats=expand(skystats_path("{member}"), member=MEMBERS),
    output:
        expand(f"{WORK}/{{member}}/sky.json", member=MEMBERS),
    params:
        members=MEMBERS,
        groups=ASN.grouped_by(config["skymatch"]["group_by"]),
        sky=skymatch_params(),
        # where levels are kept, and per member the files its level was made from
        keep_in=(KEEP_IN, {m: [p for p in (identity_stamp(m), wcs_sidecar(m)) if p]
                           for m in MEMBERS}) if KEEP_IN else None,
        refit=REFIT,
    log:
        f"{LOGS}/skymatch.log",
    benchmark:
        f"{BENCH}/skymatch.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/skymatch.py"


# save_results: each member with its sky record (and tweakreg's gwcs), <root>_<asn_id>_skymatch.fits
if step_runs("skymatch") and config["skymatch"]["save_results"]:
    SAVED_STEP_RESULTS += [intermediate_path(m, "skymatch") for m in MEMBERS]

