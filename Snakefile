# trackpipe: the whole study as one DAG.
#   snakemake --profile profiles/local                 (embedded default, config/config.yaml)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=name_pattern(DATASETS),
    model=name_pattern(MODELS),
    shard=r"\d+",

include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/locality.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
