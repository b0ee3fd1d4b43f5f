# lme4 + lmerTest reference for the random-slopes model (run from the repository root):
#   Rscript tests/analysis/data/slopes/make_reference.R
suppressPackageStartupMessages({library(lmerTest); library(pbkrtest)})
here <- "tests/analysis/data/slopes"
fits <- list(
  slopes = "response ~ condition + (1 + condition | participant) + (1 | stimulus)",
  uncorrelated = "response ~ condition + (1 | participant) + (0 + condition | participant) + (1 | stimulus)",
  intercepts = "response ~ condition + (1 | participant) + (1 | stimulus)"
)
rows <- list(); vcs <- list()
for (dataset in c("slopes", "slopes-unbalanced")) {
d <- read.csv(file.path(here, paste0(dataset, ".csv")))
d$condition <- relevel(factor(d$condition), ref = "baseline")
for (name in names(fits)) {
  elapsed <- system.time(fit <- lmer(as.formula(fits[[name]]), data = d, REML = TRUE))[["elapsed"]]
  vc <- as.data.frame(VarCorr(fit))
  vcs[[paste(dataset, name)]] <- data.frame(dataset = dataset, model = name, vc)
  co <- coef(summary(fit, ddf = "Satterthwaite"))
  rows[[paste(dataset, name)]] <- data.frame(dataset = dataset, model = name, term = rownames(co), estimate = co[, "Estimate"],
                             std_error = co[, "Std. Error"], df = co[, "df"], t = co[, "t value"],
                             p_value = co[, "Pr(>|t|)"], reml_loglik = as.numeric(logLik(fit)),
                             singular = isSingular(fit), seconds = elapsed)
  if (name == "uncorrelated") next  # Kenward-Roger: pbkrtest's dense n x n algebra takes minutes here
  kr <- coef(summary(fit, ddf = "Kenward-Roger"))
  rows[[paste(dataset, name, "kr")]] <- data.frame(dataset = dataset, model = paste0(name, "-kr"), term = rownames(kr),
                                            estimate = kr[, "Estimate"], std_error = kr[, "Std. Error"],
                                            df = kr[, "df"], t = kr[, "t value"], p_value = kr[, "Pr(>|t|)"],
                                            reml_loglik = as.numeric(logLik(fit)), singular = isSingular(fit),
                                            seconds = elapsed)
}
}
write.csv(do.call(rbind, rows), file.path(here, "lmertest-slopes.csv"), row.names = FALSE)
write.csv(do.call(rbind, vcs), file.path(here, "lme4-slopes-varcorr.csv"), row.names = FALSE)
cat(R.version.string, "lme4", as.character(packageVersion("lme4")), "lmerTest",
    as.character(packageVersion("lmerTest")), "pbkrtest", as.character(packageVersion("pbkrtest")), "\n")
