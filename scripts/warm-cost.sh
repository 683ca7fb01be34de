#!/usr/bin/env bash
# What a warm floor costs: N = 1..5 idle runners, around the clock and in business hours, from
# ACI's Linux pay-as-you-go prices (the "Standard vCPU Duration" and "Standard Memory Duration"
# meters of the Azure Retail Prices API, which needs no sign-in). Prints the prices, where and
# when they were read, and a Markdown table for the README.
#
#   scripts/warm-cost.sh                              prices for eastus, 2 vCPU / 4 GB runners
#   scripts/warm-cost.sh --region westeurope --cpu 4 --memory-gb 8
#   scripts/warm-cost.sh --vcpu-hour 0.0405 --gb-hour 0.00445   no network: given prices
#   scripts/warm-cost.sh --business-hours 60          hours a week the floor applies (WARM_HOURS)
#
# A month is 730 hours (8,760 / 12); business hours are --business-hours a week x 52 / 12.
# Needs curl and jq. Prices are list prices in --currency (USD): no savings plan, no discount.
set -euo pipefail

region="eastus"
cpu="2"
memory="4"
currency="USD"
weekly="60"
vcpu_hour=""
gb_hour=""
while [ $# -gt 0 ]; do
  case "$1" in
    --region) region="$2"; shift 2 ;;
    --cpu) cpu="$2"; shift 2 ;;
    --memory-gb) memory="$2"; shift 2 ;;
    --currency) currency="$2"; shift 2 ;;
    --business-hours) weekly="$2"; shift 2 ;;
    --vcpu-hour) vcpu_hour="$2"; shift 2 ;;
    --gb-hour) gb_hour="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "warm-cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [ -n "$vcpu_hour" ] || [ -n "$gb_hour" ]; then
  if [ -z "$vcpu_hour" ] || [ -z "$gb_hour" ]; then
    echo "warm-cost.sh: give both --vcpu-hour and --gb-hour, or neither" >&2
    exit 2
  fi
  source="given on the command line"
else
  filter="serviceName eq 'Container Instances' and armRegionName eq '${region}' and priceType eq 'Consumption' and skuName eq 'Standard' and productName eq 'Container Instances'"
  url="https://prices.azure.com/api/retail/prices"
  items="[]"
  next="${url}?currencyCode=${currency}"
  first=1
  # The API pages with NextPageLink; the filter goes on the first request only.
  while [ -n "$next" ] && [ "$next" != "null" ]; do
    if [ "$first" = 1 ]; then
      page=$(curl -fsSG --max-time 30 "$url" --data-urlencode "currencyCode=${currency}" --data-urlencode "\$filter=${filter}")
      first=0
    else
      page=$(curl -fsS --max-time 30 "$next")
    fi
    items=$(jq -c --argjson acc "$items" '$acc + .Items' <<<"$page")
    next=$(jq -r '.NextPageLink // empty' <<<"$page")
  done
  # The latest price of a meter, per hour whatever its unit ("1 Hour", "1 GB Hour", "1 Second").
  per_hour() {
    jq -r --arg m "$1" '
      [.[] | select(.meterName == $m)] | sort_by(.effectiveStartDate) | last
      | if . == null then empty
        else (if (.unitOfMeasure | test("Second")) then .unitPrice * 3600 else .unitPrice end) end' <<<"$items"
  }
  vcpu_hour=$(per_hour "Standard vCPU Duration")
  gb_hour=$(per_hour "Standard Memory Duration")
  if [ -z "$vcpu_hour" ] || [ -z "$gb_hour" ]; then
    echo "warm-cost.sh: no Standard vCPU/Memory Duration price for Container Instances in ${region}" >&2
    exit 1
  fi
  since=$(jq -r '[.[] | select(.meterName == "Standard vCPU Duration")] | sort_by(.effectiveStartDate) | last | .effectiveStartDate' <<<"$items")
  source="Azure Retail Prices API, ${region}, read $(date -u +%Y-%m-%d) (price effective since ${since})"
fi

awk -v vh="$vcpu_hour" -v gh="$gb_hour" -v cpu="$cpu" -v mem="$memory" -v weekly="$weekly" \
    -v cur="$currency" -v src="$source" 'BEGIN {
  runner = cpu * vh + mem * gh
  month = 730
  business = weekly * 52 / 12
  printf "prices: %s per vCPU-hour (%.9f per vCPU-second), %s per GB-hour (%.9f per GB-second), %s; %s\n", vh, vh / 3600, gh, gh / 3600, cur, src
  printf "one idle runner of %s vCPU and %s GB: %.4f %s an hour\n\n", cpu, mem, runner, cur
  printf "| warm runners (N) | around the clock (%d h a month) | business hours (%d h a week, %.0f h a month) |\n", month, weekly, business
  printf "|---|---|---|\n"
  for (n = 1; n <= 5; n++) {
    printf "| %d | %.2f %s | %.2f %s |\n", n, n * runner * month, cur, n * runner * business, cur
  }
}'
