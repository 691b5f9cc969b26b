/* cmd_export.c - musubi export: a dataset as CSV, JSON Lines or GeoJSON, or
 * the node's catalogue as DCAT (JSON-LD) or a Frictionless Data Package. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "mu_err.h"
#include "store.h"

static const char export_usage[] =
	"usage: musubi export --dir DATADIR --dataset MEMBER/NAME [--format csv|jsonl|geojson]\n"
	"                     [--as-of SIZE] [--valid-at YYYY-MM-DD] [--out FILE]\n"
	"       musubi export --dir DATADIR --catalog dcat [--base-url URL] [--out FILE]\n"
	"       musubi export --dir DATADIR --catalog datapackage --out DIR\n\n"
	"Write what the node holds in the formats open-data tools read.\n\n"
	"  --dataset MEMBER/NAME   one dataset at its newest signed head, in the columns of\n"
	"                          its schema; CSV that publish reads back to the same rows\n"
	"  --format F              csv (default), jsonl (one JSON object a row) or geojson\n"
	"                          (points from a geopoint field or from 緯度/経度)\n"
	"  --as-of SIZE            the dataset as the signed head of SIZE entries had it\n"
	"  --valid-at DATE         only rows in force that day (fields a schema marks\n"
	"                          effective-from / effective-until)\n"
	"  --catalog dcat          every dataset as a DCAT catalogue in JSON-LD, for CKAN's\n"
	"                          DCAT harvester (checksum: the signed head's Merkle root)\n"
	"  --catalog datapackage   a Frictionless Data Package: DIR/datapackage.json and one\n"
	"                          CSV a dataset under DIR/data\n"
	"  --base-url URL          identifiers and download URLs under URL (default urn:musubi:)\n"
	"  --out FILE|DIR          where to write (default: standard output)\n";

/* Write through a temporary file renamed over `path` once complete, so a
 * harvester never reads half a catalogue. */
static int open_out(const char *path, char *tmp, size_t cap, FILE **f)
{
	int fd;

	if (path == NULL || strcmp(path, "-") == 0) {
		*f = stdout;
		return 0;
	}
	snprintf(tmp, cap, "%s.XXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0 || (*f = fdopen(fd, "w")) == NULL) {
		int e = errno;
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return -e;
	}
	return 0;
}

static int close_out(FILE *f, const char *path, const char *tmp, int ok)
{
	if (f == stdout)
		return fflush(f) == 0 ? 0 : -errno;
	if (fclose(f) != 0)
		ok = 0;
	if (ok && rename(tmp, path) == 0)
		return 0;
	unlink(tmp);
	return ok ? -errno : 0;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "dataset", required_argument, NULL, 'n' },
		{ "format", required_argument, NULL, 'f' },
		{ "as-of", required_argument, NULL, 'a' },
		{ "valid-at", required_argument, NULL, 'v' },
		{ "catalog", required_argument, NULL, 'c' },
		{ "base-url", required_argument, NULL, 'b' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct export_opts o = { 0 };
	const char *dir = NULL, *catalog = NULL, *base = NULL, *out = NULL;
	struct store *st = NULL;
	char why[512] = "", tmp[4200];
	FILE *f = NULL;
	char *end;
	int c, rc, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, export_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "d:n:f:o:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': o.dataset = optarg; break;
		case 'f':
			if (strcmp(optarg, "csv") == 0)
				o.format = EXPORT_CSV;
			else if (strcmp(optarg, "jsonl") == 0)
				o.format = EXPORT_JSONL;
			else if (strcmp(optarg, "geojson") == 0)
				o.format = EXPORT_GEOJSON;
			else {
				cli_error("export", "--format takes csv, jsonl or geojson");
				return EXIT_USAGE;
			}
			break;
		case 'a':
			errno = 0;
			o.as_of = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || o.as_of == 0) {
				cli_error("export", "--as-of takes the size of a signed head (1 or more)");
				return EXIT_USAGE;
			}
			break;
		case 'v': o.valid_at = optarg; break;
		case 'c': catalog = optarg; break;
		case 'b': base = optarg; break;
		case 'o': out = optarg; break;
		default: return fputs(export_usage, stderr), EXIT_USAGE;
		}
	}
	if (dir == NULL || optind != argc || (o.dataset == NULL) == (catalog == NULL)) {
		cli_error("export", "--dir and one of --dataset or --catalog are required (see --help)");
		return EXIT_USAGE;
	}
	if (catalog != NULL && strcmp(catalog, "dcat") != 0 && strcmp(catalog, "datapackage") != 0) {
		cli_error("export", "--catalog takes dcat or datapackage");
		return EXIT_USAGE;
	}
	if (catalog != NULL && strcmp(catalog, "datapackage") == 0 && out == NULL) {
		cli_error("export", "--catalog datapackage needs --out DIR");
		return EXIT_USAGE;
	}
	if ((rc = store_open(dir, STORE_RDONLY, &st)) < 0) {
		cli_error("export", "cannot open the store in %s: %s%s", dir, mu_strerror(rc),
			  rc == -ENOENT ? " (run musubi init first)" : "");
		return EXIT_FAILURE_;
	}
	if (catalog != NULL && strcmp(catalog, "datapackage") == 0) {
		rc = export_datapackage(st, out, why, sizeof(why));
	} else if ((rc = open_out(out, tmp, sizeof(tmp), &f)) < 0) {
		snprintf(why, sizeof(why), "cannot write %s: %s", out, strerror(-rc));
	} else {
		rc = catalog != NULL ? export_dcat(st, base, f, why, sizeof(why)) :
				       export_dataset(st, &o, f, NULL, why, sizeof(why));
		int crc = close_out(f, out, tmp, rc == 0);
		if (rc == 0 && crc < 0) {
			rc = crc;
			snprintf(why, sizeof(why), "cannot write %s: %s", out, strerror(-crc));
		}
	}
	if (rc < 0) {
		cli_error("export", "%s", why[0] ? why : mu_strerror(rc));
		ret = rc == -ENOENT || rc == MU_E_USAGE || rc == MU_E_SCHEMA ? EXIT_PROBLEM :
										 EXIT_FAILURE_;
	} else {
		ret = EXIT_OK;
	}
	store_close(&st);
	return ret;
}
