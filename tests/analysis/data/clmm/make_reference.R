# Reference fits of ordinal::clmm for tests/analysis/test_clmm.py (run from the repository root):
#   Rscript tests/analysis/data/clmm/make_reference.R
# Writes clmm-reference.csv (estimates, SEs, SDs, logLik per dataset and link) and clmm-times.csv.
# Optional arguments: the datasets to fit (default: all three).
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
datasets <- commandArgs(trailingOnly = TRUE)
if (!length(datasets)) datasets <- c("likert-a", "likert-b", "validation-artistry")
for (name in datasets) {
  d <- read_dataset(name)
  for (link in c("logit", "probit")) {
    elapsed <- system.time(
      fit <- clmm(response ~ condition + (1 | participant) + (1 | stimulus), data = d, link = link)
    )
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
    times[[length(times) + 1]] <- data.frame(dataset = name, link = link, n = nrow(d), seconds = elapsed[["elapsed"]],
                                             cpu_seconds = elapsed[["user.self"]] + elapsed[["sys.self"]],
                                             max_grad = max(abs(fit$gradient)))
  }
}
merge_write <- function(new, file) {  # keep the rows of datasets not refitted in this run
  path <- file.path(here, file)
  if (file.exists(path)) {
    old <- read.csv(path)
    new <- rbind(old[!old$dataset %in% new$dataset, names(new)], new)
  }
  write.csv(new, path, row.names = FALSE)
}
merge_write(do.call(rbind, rows), "clmm-reference.csv")
merge_write(do.call(rbind, times), "clmm-times.csv")
cat(R.version.string, "ordinal", as.character(packageVersion("ordinal")), "\n")
