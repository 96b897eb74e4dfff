# trackpipe: the whole study as one DAG.
#   snakemake --profile profiles/local                 (embedded default, config/config.yaml)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
from snakemake.utils import min_version, validate

min_version("9.0")


# A config given on the command line stands alone: the embedded default is read only when none is given.
# (Snakemake would otherwise merge --configfile into it, so every key the given file leaves out would
# silently come from the demo; cluster jobs receive the same --configfiles and take the same branch.)
if not workflow.overwrite_configfiles:

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
