# Reference for tests/analysis/test_network.py: lme4 with a third crossed grouping factor (the perturbed network).
# Rscript tests/analysis/data/network/make_reference.R  (run from the repository root)
suppressMessages(library(lme4))
d <- read.csv("tests/analysis/data/network/ratings.csv")
d$condition <- relevel(factor(d$condition), ref = "baseline")
m <- lmer(response ~ condition + (1 | participant) + (1 | stimulus) + (1 | network), d, REML = TRUE,
          control = lmerControl(optimizer = "bobyqa"))
vc <- as.data.frame(VarCorr(m))
out <- data.frame(kind = c(rep("beta", length(fixef(m))), rep("vcov_se", length(fixef(m))), rep("variance", nrow(vc)),
                           "reml_loglik"),
                  name = c(names(fixef(m)), names(fixef(m)), vc$grp, "logLik"),
                  value = c(unname(fixef(m)), sqrt(diag(as.matrix(vcov(m)))), vc$vcov, as.numeric(logLik(m))))
write.csv(out, "tests/analysis/data/network/lme4_reference.csv", row.names = FALSE)
cat(format(packageVersion("lme4")), "\n")
