# Reference fits of ordinal::clmm for tests/analysis/test_clmm.py (run from the repository root):
#   Rscript tests/analysis/data/clmm/make_reference.R
# Writes clmm-reference.csv (estimates, SEs, SDs, logLik per dataset and link) and clmm-times.csv.
suppressPackageStartupMessages(library(ordinal))
here <- "tests/analysis/data/clmm"
read_dataset <- function(name) {
  if (name == "validation-artistry") {
    d <- read.csv(gzfile("tests/analysis/data/validation/ratings-reference.csv.gz"))
    d <- d[d$dimension == "artistry", ]
  } else {
    d <- read.csv(file.path(here, paste0(name, ".csv")))
  }
  d$response <- factor(d$response, ordered = TRUE)
  d$condition <- relevel(factor(d$condition), ref = "baseline")
  d
}
rows <- list(); times <- list()
for (name in c("likert-a", "likert-b", "validation-artistry")) {
  d <- read_dataset(name)
  for (link in c("logit", "probit")) {
    elapsed <- system.time(
      fit <- clmm(response ~ condition + (1 | participant) + (1 | stimulus), data = d, link = link)
    )[["elapsed"]]
    s <- summary(fit)
    co <- coef(s)
    kind <- ifelse(rownames(co) %in% names(fit$alpha), "threshold", "fixed")
    rows[[length(rows) + 1]] <- data.frame(dataset = name, link = link, kind = kind, term = rownames(co),
                                           estimate = co[, 1], std_error = co[, 2])
    sds <- sapply(VarCorr(fit), function(v) attr(v, "stddev"))
    rows[[length(rows) + 1]] <- data.frame(dataset = name, link = link, kind = "sd",
                                           term = sub("\\..*", "", names(sds)), estimate = unname(sds),
                                           std_error = NA)
    rows[[length(rows) + 1]] <- data.frame(dataset = name, link = link, kind = "loglik", term = "logLik",
                                           estimate = as.numeric(logLik(fit)), std_error = NA)
    times[[length(times) + 1]] <- data.frame(dataset = name, link = link, n = nrow(d), seconds = elapsed,
                                             max_grad = max(abs(fit$gradient)))
  }
}
write.csv(do.call(rbind, rows), file.path(here, "clmm-reference.csv"), row.names = FALSE)
write.csv(do.call(rbind, times), file.path(here, "clmm-times.csv"), row.names = FALSE)
cat(R.version.string, "ordinal", as.character(packageVersion("ordinal")), "\n")
