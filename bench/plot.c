/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench matrix --plot DIR: PNG plots of a matrix, drawn by gnuplot.
 *
 * The data go into plain text files and the drawing into one gnuplot script (plots.gp) in DIR,
 * and gnuplot runs there; the files stay, so that a plot can be restyled and redrawn with
 * "gnuplot plots.gp" without running the matrix again, and a machine without gnuplot still
 * gets everything but the PNGs. Plots (one panel per cost model):
 *   throughput.png      modeled host throughput per core, Gbit/s, per policy and workload
 *   breakdown.png       host CPU ns per DMA'd page, stacked: measured alloc, plan, other and
 *                       modeled map, unmap, invalidation submit and wait
 *   window-cdf.png      safety window distribution per policy (one panel per workload too)
 *   inval-per-page.png  invalidation commands per unmapped page
 * Data are per DMA'd page in the breakdown, so that workloads with 1 and 256 pages per op
 * share an axis. Missing figures are written as NaN, which gnuplot leaves out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iovaq/iovaq.h>

#include "bench.h"

#define SCRIPT "plots.gp"
#define INSTALL_HINT "install gnuplot (Debian: apt-get install gnuplot-nox, or bash scripts/setup.sh)"

enum {
	PLOT_THROUGHPUT,
	PLOT_BREAKDOWN,
	PLOT_WINDOW,
	PLOT_INVAL,
	N_PLOTS,
};

static const char *const plot_names[N_PLOTS] = {
	[PLOT_THROUGHPUT] = "throughput.png",
	[PLOT_BREAKDOWN] = "breakdown.png",
	[PLOT_WINDOW] = "window-cdf.png",
	[PLOT_INVAL] = "inval-per-page.png",
};

/* Short policy labels: the long names overlap under the bars. */
static const char *const policy_label[BENCH_N_POLICIES] = {
	"strict", "deferred", "safe-def.", "safe+arenas", "passthru",
};

/* ---- directory and program ---------------------------------------------------------------- */

/* mkdir -p */
static int make_dirs(const char *dir)
{
	char *p = strdup(dir);
	int err = 0;

	if (!p)
		return ENOMEM;
	for (char *s = p + 1; *s && !err; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0777) && errno != EEXIST)
			err = errno;
		*s = '/';
	}
	if (!err && mkdir(p, 0777) && errno != EEXIST)
		err = errno;
	free(p);
	return err;
}

/* Whether @prog is an executable file in a directory of $PATH. */
static bool on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		return false;
	while (*path) {
		size_t len = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)len, len ? path : ".",
			 len ? "/" : "", prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += len + (path[len] == ':');
	}
	return false;
}

void bench_plot_prepare(const char *dir)
{
	struct stat st;
	int err = make_dirs(dir);

	if (!err && (stat(dir, &st) || !S_ISDIR(st.st_mode)))
		err = ENOTDIR;
	if (!err && access(dir, W_OK | X_OK))
		err = errno;
	if (err)
		bench_usage_error("invalid value '%s' for --plot: %s (expected a directory that "
				  "can be created and written)", dir, strerror(err));
	if (!on_path("gnuplot"))
		bench_warn("gnuplot not found on PATH: the matrix runs and writes its tables, the "
			   "plot data and %s/%s, but no PNGs; %s", dir, SCRIPT, INSTALL_HINT);
}

/* ---- data files --------------------------------------------------------------------------- */

struct plot_ctx {
	const struct bench_plot_input *in;
	FILE *gp;
	int err;		/* the first write error (errno) */
	char file[4096];	/* the file being written, for messages */
};

static FILE *data_open(struct plot_ctx *pc, const char *name)
{
	FILE *f;

	snprintf(pc->file, sizeof(pc->file), "%s/%s", pc->in->dir, name);
	f = fopen(pc->file, "w");
	if (!f && !pc->err)
		pc->err = errno;
	return f;
}

static void data_close(struct plot_ctx *pc, FILE *f)
{
	if (!f)
		return;
	if ((ferror(f) | fclose(f)) && !pc->err)
		pc->err = errno ? errno : EIO;
}

static const struct bench_run_metrics *run_at(const struct bench_plot_input *in, unsigned int m,
					      unsigned int w, unsigned int p)
{
	return bench_run_metrics(in->runs[(m * in->workloads + w) * in->policies + p]);
}

static void put_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, " %.6g", v);
	else
		fputs(" NaN", f);
}

/*
 * One block per model: a header line of policy labels, then a row per workload. Without
 * @with_pass, passthrough has no column. Return: the number of policy columns.
 */
static unsigned int write_by_workload(struct plot_ctx *pc, const char *name, bool with_pass,
				      double (*value)(const struct bench_run_metrics *))
{
	const struct bench_plot_input *in = pc->in;
	FILE *f = data_open(pc, name);
	unsigned int cols = 0;

	if (!f)
		return 0;
	for (unsigned int m = 0; m < in->models; m++) {
		fprintf(f, "%s# model %s\nworkload", m ? "\n\n" : "", run_at(in, m, 0, 0)->model_name);
		cols = 0;
		for (unsigned int p = 0; p < in->policies; p++) {
			unsigned int pol = run_at(in, m, 0, p)->pol;

			if (with_pass || pol != BENCH_POLICY_PASSTHROUGH) {
				fprintf(f, " %s", policy_label[pol]);
				cols++;
			}
		}
		fputc('\n', f);
		for (unsigned int w = 0; w < in->workloads; w++) {
			fputs(bench_workload_names[run_at(in, m, w, 0)->wl], f);
			for (unsigned int p = 0; p < in->policies; p++) {
				const struct bench_run_metrics *r = run_at(in, m, w, p);

				if (with_pass || r->pol != BENCH_POLICY_PASSTHROUGH)
					put_num(f, value(r));
			}
			fputc('\n', f);
		}
	}
	data_close(pc, f);
	return cols;
}

static double v_gbit(const struct bench_run_metrics *m)
{
	return m->host_gbit_per_s;
}

static double v_inval(const struct bench_run_metrics *m)
{
	return m->inval_per_page > 0 ? m->inval_per_page : NAN;	/* no 0 on a log axis */
}

/* The host parts of the breakdown, bottom to top of a stacked bar. */
#define N_PARTS 7
static const char *const part_names[N_PARTS] = {
	"alloc", "plan", "other", "map*", "unmap*", "inval submit*", "inval wait*",
};

static void parts(const struct bench_run_metrics *m, double *v)
{
	v[0] = m->cpu[BENCH_CPU_ALLOC];
	v[1] = m->cpu[BENCH_CPU_PLAN];
	v[2] = m->cpu[BENCH_CPU_OTHER];
	for (unsigned int k = 0; k < BENCH_N_MDL; k++)
		v[3 + k] = m->mdl[k];
	for (unsigned int k = 0; k < N_PARTS; k++)
		v[k] /= m->pages_per_op;
}

/* One block per model and workload: a row per policy, a column per part. */
static void write_breakdown(struct plot_ctx *pc)
{
	const struct bench_plot_input *in = pc->in;
	FILE *f = data_open(pc, "breakdown.dat");
	bool first = true;

	if (!f)
		return;
	for (unsigned int m = 0; m < in->models; m++) {
		for (unsigned int w = 0; w < in->workloads; w++) {
			fprintf(f, "%s# model %s, workload %s, host CPU ns per DMA'd page\npolicy",
				first ? "" : "\n\n", run_at(in, m, w, 0)->model_name,
				bench_workload_names[run_at(in, m, w, 0)->wl]);
			first = false;
			for (unsigned int k = 0; k < N_PARTS; k++)
				fprintf(f, " \"%s\"", part_names[k]);
			fputc('\n', f);
			for (unsigned int p = 0; p < in->policies; p++) {
				const struct bench_run_metrics *r = run_at(in, m, w, p);
				double v[N_PARTS];

				parts(r, v);
				fputs(policy_label[r->pol], f);
				for (unsigned int k = 0; k < N_PARTS; k++)
					put_num(f, v[k]);
				fputc('\n', f);
			}
		}
	}
	data_close(pc, f);
}

/*
 * One block per model, workload and policy with releases: 1 - CDF of the window, from the
 * library's histogram (iovaq_domain_window_hist(): bucket bounds within 1/8 of the windows
 * they hold). Each bucket gives a point: its bound, and the fraction of releases with a longer
 * window. The last bucket's fraction is 0, which a log axis cannot show: it is drawn at half a
 * release instead, below every other point.
 */
static unsigned int write_window(struct plot_ctx *pc, int *block)
{
	const struct bench_plot_input *in = pc->in;
	FILE *f = data_open(pc, "window.dat");
	unsigned int n = 0;

	if (!f)
		return 0;
	for (unsigned int i = 0; i < in->n; i++) {
		const struct bench_run_metrics *r = bench_run_metrics(in->runs[i]);
		uint64_t total = 0, cum = 0;

		block[i] = -1;
		if (!r->releases || !r->n_hist || r->pol == BENCH_POLICY_PASSTHROUGH)
			continue;
		for (unsigned int b = 0; b < r->n_hist; b++)
			total += r->hist[b].count;
		fprintf(f, "%s# %s, %s, %s: window us (bucket bound), fraction of releases with "
			   "a longer one\n", n ? "\n\n" : "", r->model_name,
			bench_workload_names[r->wl], bench_policy_names[r->pol]);
		for (unsigned int b = 0; b < r->n_hist; b++) {
			uint64_t up = r->hist[b].upper_ns < r->window_ns[3] ? r->hist[b].upper_ns
									     : r->window_ns[3];

			cum += r->hist[b].count;
			fprintf(f, "%.6g %.6g\n", (double)up / 1e3,
				cum < total ? (double)(total - cum) / (double)total
					    : 0.5 / (double)total);
		}
		block[i] = (int)n++;
	}
	data_close(pc, f);
	return n;
}

/* ---- the script --------------------------------------------------------------------------- */

static void gp(struct plot_ctx *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void gp(struct plot_ctx *pc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(pc->gp, fmt, ap);
	va_end(ap);
}

/* @s as the inside of a single-quoted gnuplot string (quotes doubled). */
static const char *gp_quote(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 2 < len; s++) {
		if (*s == '\'')
			buf[o++] = '\'';
		buf[o++] = *s;
	}
	buf[o] = '\0';
	return buf;
}

static void gp_common(struct plot_ctx *pc, const char *png, unsigned int w, unsigned int h)
{
	/* "reset session" also forgets the linetype colours set for the previous plot. */
	gp(pc, "\nreset session\nset terminal pngcairo size %u,%u font 'Sans,9' noenhanced\n", w, h);
	gp(pc, "set output '%s'\n", png);
	gp(pc, "set grid ytics lc rgb '#dddddd'\nset border 3\nset tics nomirror\n");
}

/* Clustered bars of a by-workload data file: one panel per model. */
static void gp_clustered(struct plot_ctx *pc, const char *png, const char *data,
			 unsigned int cols, const char *title, const char *ylabel)
{
	const struct bench_plot_input *in = pc->in;
	char q[2][256];

	gp_common(pc, png, 420 * in->models + 80, 440);
	gp(pc, "set multiplot layout 1,%u title '%s'\n", in->models,
	   gp_quote(q[0], sizeof(q[0]), title));
	gp(pc, "set style data histograms\nset style histogram clustered gap 1\n"
	       "set style fill solid 0.85 border -1\nset logscale y\n"
	       "set ylabel '%s'\nset xlabel 'workload'\n"
	       "set key at screen 0.995, screen 0.995 right top horizontal font ',8' "
	       "samplen 1.5\n", gp_quote(q[1], sizeof(q[1]), ylabel));
	for (unsigned int m = 0; m < in->models; m++) {
		gp(pc, "set title '%s'\n", run_at(in, m, 0, 0)->model_name);
		gp(pc, "plot for [c=2:%u] '%s' index %u using c:xtic(1) title columnheader(c) "
		       "lt (c - 1)\n", cols + 1, data, m);
		if (m == 0)
			gp(pc, "unset key\n");
	}
	gp(pc, "unset multiplot\n");
}

static void gp_breakdown(struct plot_ctx *pc)
{
	/* Measured parts in cool colours, modeled ones in warm colours. */
	static const char *const colour[N_PARTS] = {
		"#6a3d9a", "#33a02c", "#a6cee3", "#ff7f00", "#fdbf6f", "#e31a1c", "#fb9a99",
	};
	const struct bench_plot_input *in = pc->in;

	gp_common(pc, plot_names[PLOT_BREAKDOWN], 1200, 330 * in->models + 60);
	gp(pc, "set multiplot layout %u,1 title 'Host CPU time per DMA''d page: measured "
	       "(alloc, plan, other) and modeled by the sim (*)'\n", in->models);
	for (unsigned int k = 0; k < N_PARTS; k++)
		gp(pc, "set linetype %u lc rgb '%s'\n", k + 1, colour[k]);
	gp(pc, "set style data histograms\nset style histogram rowstacked title offset 0,-0.6\n"
	       "set style fill solid 0.85 border -1\nset boxwidth 0.75\n"
	       "set ylabel 'ns per DMA''d page'\nset xtics rotate by -35 font ',8'\n"
	       "set key outside right top font ',8' samplen 1.5\nset yrange [0:*]\n");
	for (unsigned int m = 0; m < in->models; m++) {
		gp(pc, "set title '%s'\nplot ", run_at(in, m, 0, 0)->model_name);
		for (unsigned int w = 0; w < in->workloads; w++) {
			unsigned int idx = m * in->workloads + w;

			gp(pc, "%snewhistogram '%s' lt 1, for [c=2:%u] 'breakdown.dat' index %u "
			       "using c:xtic(1) %s", w ? ", \\\n\t" : "",
			   bench_workload_names[run_at(in, m, w, 0)->wl], N_PARTS + 1, idx,
			   w ? "notitle" : "title columnheader(c)");
		}
		gp(pc, "\n");
	}
	gp(pc, "unset multiplot\n");
}

static void gp_window(struct plot_ctx *pc, const int *block)
{
	const struct bench_plot_input *in = pc->in;

	gp_common(pc, plot_names[PLOT_WINDOW], 300 * in->workloads + 60, 260 * in->models + 60);
	gp(pc, "set multiplot layout %u,%u title 'Safety window (release to t_safe): fraction "
	       "of releases with a longer one (1 - CDF; the last point: none)'\n",
	   in->models, in->workloads);
	gp(pc, "set logscale xy\nset format x '%%g'\nset format y '%%g'\n"
	       "set xlabel 'window (us)'\nset ylabel 'fraction of releases'\n"
	       "set xrange [0.1:%g]\nset yrange [*:1]\nset key bottom left font ',7' "
	       "samplen 1.5\nset grid xtics ytics lc rgb '#dddddd'\n",
	   3.0 * IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS / 1e3);
	gp(pc, "set arrow 1 from %g, graph 0 to %g, graph 1 nohead dt 2 lc rgb '#888888'\n"
	       "set label 1 'bound' at %g, graph 0.97 right font ',7' tc rgb '#888888'\n",
	   IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS / 1e3, IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS / 1e3,
	   0.9 * IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS / 1e3);
	for (unsigned int m = 0; m < in->models; m++) {
		for (unsigned int w = 0; w < in->workloads; w++) {
			unsigned int lines = 0;

			gp(pc, "set title '%s, %s'\n", run_at(in, m, 0, 0)->model_name,
			   bench_workload_names[run_at(in, m, w, 0)->wl]);
			for (unsigned int p = 0; p < in->policies; p++) {
				unsigned int i = (m * in->workloads + w) * in->policies + p;
				const struct bench_run_metrics *r = run_at(in, m, w, p);

				if (block[i] < 0)
					continue;
				gp(pc, "%s'window.dat' index %d using 1:2 with steps lt %u "
				       "lw 1.5 title '%s'", lines ? ", \\\n\t" : "plot ",
				   block[i], p + 1, policy_label[r->pol]);
				lines++;
			}
			/* A panel without releases (passthrough only) stays empty. */
			gp(pc, lines ? "\n" : "set multiplot next\n");
		}
	}
	gp(pc, "unset multiplot\n");
}

/* ---- running gnuplot ---------------------------------------------------------------------- */

static int run_gnuplot(const char *dir, char *why, size_t len)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(why, len, "cannot start gnuplot: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		/* gnuplot's own output would mix with ours on stdout; its errors stay. */
		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		if (chdir(dir) == 0)
			execlp("gnuplot", "gnuplot", SCRIPT, (char *)NULL);
		_exit(errno == ENOENT ? 127 : 126);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, len, "waiting for gnuplot: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		snprintf(why, len, "gnuplot not found on PATH: no PNGs were made; %s, then run "
			 "'gnuplot %s' in %s", INSTALL_HINT, SCRIPT, dir);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(why, len, "gnuplot failed (%s %d) on %s/%s", WIFEXITED(status) ?
			 "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) :
			 WTERMSIG(status), dir, SCRIPT);
		return -1;
	}
	return 0;
}

int bench_plot_matrix(const struct bench_plot_input *in, struct bench_plot_result *out)
{
	struct plot_ctx pc = { .in = in };
	int *block = calloc(in->n, sizeof(*block));
	unsigned int nwin, ntp, ninv;

	memset(out, 0, sizeof(*out));
	out->files = calloc(N_PLOTS, sizeof(*out->files));
	if (!block || !out->files) {
		free(block);
		snprintf(out->why, sizeof(out->why), "out of memory");
		return BENCH_EXIT_FAIL;
	}

	ntp = write_by_workload(&pc, "throughput.dat", true, v_gbit);
	/* Passthrough issues no invalidation: no bar on a log axis. */
	ninv = write_by_workload(&pc, "inval.dat", false, v_inval);
	write_breakdown(&pc);
	nwin = write_window(&pc, block);
	pc.gp = data_open(&pc, SCRIPT);
	if (pc.gp) {
		gp(&pc, "# Written by iovaq-bench matrix --plot; redraw with: gnuplot %s\n", SCRIPT);
		gp_clustered(&pc, plot_names[PLOT_THROUGHPUT], "throughput.dat", ntp,
			     "Modeled host throughput per core (DMA'd bytes)", "Gbit/s (log)");
		gp_breakdown(&pc);
		if (nwin)
			gp_window(&pc, block);
		if (ninv)
			gp_clustered(&pc, plot_names[PLOT_INVAL], "inval.dat", ninv,
				     "Invalidation commands per unmapped page (passthrough: none)",
				     "commands per page (log)");
		data_close(&pc, pc.gp);
	}
	free(block);
	if (pc.err) {
		snprintf(out->why, sizeof(out->why), "cannot write %.400s: %s", pc.file,
			 strerror(pc.err));
		return BENCH_EXIT_FAIL;
	}
	if (run_gnuplot(in->dir, out->why, sizeof(out->why)))
		return BENCH_EXIT_FAIL;

	for (unsigned int k = 0; k < N_PLOTS; k++) {
		struct stat st;
		char path[4096];

		if ((k == PLOT_WINDOW && !nwin) || (k == PLOT_INVAL && !ninv))
			continue;
		snprintf(path, sizeof(path), "%s/%s", in->dir, plot_names[k]);
		if (stat(path, &st) || st.st_size == 0) {
			snprintf(out->why, sizeof(out->why), "gnuplot did not write %.400s", path);
			return BENCH_EXIT_FAIL;
		}
		out->files[out->n] = strdup(path);
		if (!out->files[out->n]) {
			snprintf(out->why, sizeof(out->why), "out of memory");
			return BENCH_EXIT_FAIL;
		}
		out->n++;
	}
	out->ok = true;
	return 0;
}

void bench_plot_report(const struct bench_plot_input *in, const struct bench_plot_result *r,
		       FILE *f)
{
	if (!r->ok) {
		bench_error("%s", r->why);
		return;
	}
	fprintf(f, "\nPlots (%s/%s redraws them):\n", in->dir, SCRIPT);
	for (unsigned int i = 0; i < r->n; i++)
		fprintf(f, "  %s\n", r->files[i]);
}

void bench_plot_result_free(struct bench_plot_result *r)
{
	if (r->files)
		for (unsigned int i = 0; i < r->n; i++)
			free(r->files[i]);
	free(r->files);
	r->files = NULL;
	r->n = 0;
}
