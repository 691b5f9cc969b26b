/*
 * gencsv.c - generate a municipal-looking CSV for benchmarks and crash
 * tests: ten columns of the usual types, about 300 bytes a row, matching
 * tests/bench/bench_schema.json. Deterministic for a given seed.
 *
 * usage: gencsv ROWS [SEED] > file.csv
 * The third form changes every K-th row of the seed-0 file, for diff tests:
 *        gencsv ROWS SEED K
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: good enough for test data, and reproducible. */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static const char *const wards[] = { "中央区", "北区", "東区", "白石区", "豊平区", "南区",
				     "西区", "厚別区", "手稲区", "清田区" };
static const char *const kinds[] = { "小学校", "中学校", "体育館", "公園", "地区センター",
				     "コミュニティセンター", "高等学校", "福祉会館" };

int main(int argc, char **argv)
{
	unsigned long long rows, seed = 0, every = 0;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: gencsv ROWS [SEED [EVERY]] > file.csv\n");
		return 2;
	}
	rows = strtoull(argv[1], NULL, 10);
	if (argc > 2)
		seed = strtoull(argv[2], NULL, 10);
	if (argc > 3)
		every = strtoull(argv[3], NULL, 10);
	printf("id,code,名称,住所,緯度,経度,収容人数,開設日,有効,備考\n");
	for (unsigned long long i = 1; i <= rows; i++) {
		rng_state = i * 7919 + (every && i % every == 0 ? seed : 0);
		const char *ward = wards[rng() % 10], *kind = kinds[rng() % 8];
		unsigned town = (unsigned)(rng() % 30) + 1, block = (unsigned)(rng() % 20) + 1;
		printf("%llu,E%011llu,札幌市%s第%u%s,北海道札幌市%s%u条%u丁目%u番%u号 市民施設棟,"
		       "%.6f,%.6f,%u,20%02u-%02u-%02u,%s,"
		       "\"指定緊急避難場所(洪水,地震,大規模な火事) 備蓄倉庫あり 管理者:札幌市危機管理局 連絡先 011-%03u-%04u\"\n",
		       i, 1100000000ull + i, ward, town, kind, ward, town, block,
		       (unsigned)(rng() % 30) + 1, (unsigned)(rng() % 9) + 1,
		       42.9 + (double)(rng() % 200000) / 1e6, 141.2 + (double)(rng() % 300000) / 1e6,
		       (unsigned)(rng() % 2000), (unsigned)(rng() % 25), (unsigned)(rng() % 12) + 1,
		       (unsigned)(rng() % 28) + 1, rng() % 2 ? "true" : "false",
		       (unsigned)(rng() % 1000), (unsigned)(rng() % 10000));
	}
	return 0;
}
