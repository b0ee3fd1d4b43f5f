# lme4 + lmerTest reference for the random-slopes model (run from the repository root):
#   Rscript tests/analysis/data/slopes/make_reference.R
suppressPackageStartupMessages(library(lmerTest))
here <- "tests/analysis/data/slopes"
d <- read.csv(file.path(here, "slopes.csv"))
d$condition <- relevel(factor(d$condition), ref = "baseline")
fits <- list(
  slopes = "response ~ condition + (1 + condition | participant) + (1 | stimulus)",
  uncorrelated = "response ~ condition + (1 | participant) + (0 + condition | participant) + (1 | stimulus)",
  intercepts = "response ~ condition + (1 | participant) + (1 | stimulus)"
)
rows <- list(); vcs <- list()
for (name in names(fits)) {
  elapsed <- system.time(fit <- lmer(as.formula(fits[[name]]), data = d, REML = TRUE))[["elapsed"]]
  co <- coef(summary(fit, ddf = "Satterthwaite"))
  rows[[name]] <- data.frame(model = name, term = rownames(co), estimate = co[, "Estimate"],
                             std_error = co[, "Std. Error"], df = co[, "df"], t = co[, "t value"],
                             p_value = co[, "Pr(>|t|)"], reml_loglik = as.numeric(logLik(fit)),
                             singular = isSingular(fit), seconds = elapsed)
  vc <- as.data.frame(VarCorr(fit))
  vcs[[name]] <- data.frame(model = name, vc)
}
write.csv(do.call(rbind, rows), file.path(here, "lmertest-slopes.csv"), row.names = FALSE)
write.csv(do.call(rbind, vcs), file.path(here, "lme4-slopes-varcorr.csv"), row.names = FALSE)
cat(R.version.string, "lme4", as.character(packageVersion("lme4")), "lmerTest",
    as.character(packageVersion("lmerTest")), "\n")
