//! `put_nd_ra_opts`: the router advertisement answering a router solicitation, as
//! OVN's `encode_PUT_ND_RA_OPTS` frames it (RFC 4861 §4.2: hop limit 255, router
//! lifetime 0xffff; addr_mode sets M/O, router_preference the preference bits; SLLA,
//! MTU, prefix, RDNSS (RFC 8106), DNSSL and route information (RFC 4191) options in the
//! action's order) and pinctrl's `pinctrl_handle_put_nd_ra_opts` puts it in place of
//! the solicitation's ICMPv6 message.

use ovnest_logical::actions::GenOption;
use ovnest_logical::expr::Const;
use ovnest_logical::flow::{ETH_TYPE_IPV6, Flow};

use super::compose;
use super::dhcp::NoReply;
use crate::flow::Layers;

const ND_ROUTER_SOLICIT: u16 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const MANAGED: u8 = 0x80;
const OTHER: u8 = 0x40;
const PRF_HIGH: u8 = 0x08;
const PRF_LOW: u8 = 0x18;
const PRF_RESET_MASK: u8 = 0xe7;
const PREFIX_ON_LINK: u8 = 0x80;
const PREFIX_AUTONOMOUS: u8 = 0x40;

fn str_of(o: &GenOption) -> &str {
    match o.value.values.first() {
        Some(Const::Str(s)) => s,
        _ => "",
    }
}

fn int_of(o: &GenOption) -> (u128, Option<u128>) {
    match o.value.values.first() {
        Some(Const::Int(k)) => (k.value, k.mask),
        _ => (0, None),
    }
}

/// The ICMPv6 router advertisement (checksum 0) for the action's options.
pub fn encode(options: &[GenOption]) -> Vec<u8> {
    let mut ra = vec![
        ND_ROUTER_ADVERT,
        0,
        0,
        0,
        255,
        0,
        0xff,
        0xff,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    for o in options {
        match o.def.code {
            0 => match str_of(o) {
                "dhcpv6_stateful" => ra[5] |= MANAGED,
                "dhcpv6_stateless" => ra[5] |= OTHER,
                _ => {}
            },
            255 => match str_of(o) {
                "LOW" => ra[5] |= PRF_LOW,
                "HIGH" => ra[5] |= PRF_HIGH,
                _ => {}
            },
            1 => {
                ra.extend_from_slice(&[1, 1]);
                ra.extend_from_slice(&compose::mac(int_of(o).0));
            }
            5 => {
                ra.extend_from_slice(&[5, 1, 0, 0]);
                ra.extend_from_slice(&(int_of(o).0 as u32).to_be_bytes());
            }
            3 => {
                let (v, mask) = int_of(o);
                let plen = mask.map_or(128, |m| m.count_ones()) as u8;
                let mut la = PREFIX_ON_LINK;
                if ra[5] & MANAGED == 0 {
                    la |= PREFIX_AUTONOMOUS;
                }
                ra.extend_from_slice(&[3, 4, plen, la]);
                ra.extend_from_slice(&[0xff; 8]);
                ra.extend_from_slice(&[0; 4]);
                ra.extend_from_slice(&v.to_be_bytes());
            }
            25 => {
                ra.extend_from_slice(&[25, 3, 0, 0, 0xff, 0xff, 0xff, 0xff]);
                ra.extend_from_slice(&int_of(o).0.to_be_bytes());
            }
            31 => {
                if let Some(body) = encode_dnssl(str_of(o)) {
                    ra.extend_from_slice(&[31, ((body.len() + 8) / 8) as u8, 0, 0]);
                    ra.extend_from_slice(&[0xff; 4]);
                    ra.extend_from_slice(&body);
                }
            }
            24 => encode_route_info(str_of(o), &mut ra),
            _ => {}
        }
    }
    if ra[6] == 0 && ra[7] == 0 {
        ra[5] &= PRF_RESET_MASK;
    }
    ra
}

/// OVN's `encode_ra_dnssl_opt`: RFC 1035 names, zero-padded so that the option (8
/// header bytes included) is a multiple of 8; `None` past 255 bytes.
pub fn encode_dnssl(list: &str) -> Option<Vec<u8>> {
    let mut size = 8usize;
    let mut buf = Vec::new();
    for name in list.split(',').filter(|s| !s.is_empty()) {
        size += name.len() + 2;
        if size > 255 {
            return None;
        }
        for label in name.split('.').filter(|s| !s.is_empty()) {
            let l = &label.as_bytes()[..label.len().min(255)];
            buf.push(l.len() as u8);
            buf.extend_from_slice(l);
        }
        buf.push(0);
    }
    let total = size.div_ceil(8) * 8;
    buf.resize(total - 8, 0);
    Some(buf)
}

/// OVN's `encode_ra_route_info_opt`: `PRF-PREFIX/PLEN` entries, comma-separated; an
/// entry that is not an IPv6 prefix stops the encoding.
fn encode_route_info(list: &str, out: &mut Vec<u8>) {
    for entry in list.split(',').filter(|s| !s.is_empty()) {
        let mut flags = 0;
        for (i, part) in entry.split('-').filter(|s| !s.is_empty()).enumerate() {
            // The first part is the preference; every later one a prefix (OVN resets
            // its index to the prefix's after each prefix).
            if i == 0 {
                flags = match part {
                    "HIGH" => PRF_HIGH,
                    "LOW" => PRF_LOW,
                    _ => 0,
                };
                continue;
            }
            let Some((addr, plen)) = parse_prefix6(part) else {
                return;
            };
            let n = usize::from(plen).div_ceil(64);
            out.extend_from_slice(&[24, 1 + n as u8, plen, flags, 0xff, 0xff, 0xff, 0xff]);
            let net = if plen == 0 {
                0
            } else {
                addr & (!0u128 << (128 - u32::from(plen)))
            };
            out.extend_from_slice(&net.to_be_bytes()[..n * 8]);
        }
    }
}

fn parse_prefix6(s: &str) -> Option<(u128, u8)> {
    let (a, p) = s.split_once('/').unwrap_or((s, "128"));
    let addr: std::net::Ipv6Addr = a.parse().ok()?;
    let plen: u8 = p.parse().ok().filter(|&p: &u8| p <= 128)?;
    Some((u128::from(addr), plen))
}

/// Builds the advertisement in place of the solicitation in `frame` (headers `flow`).
pub fn reply(
    frame: &[u8],
    layers: Layers,
    flow: &Flow,
    options: &[GenOption],
) -> Result<(Vec<u8>, &'static str), NoReply> {
    let ra = encode(options);
    if flow.dl_type() != ETH_TYPE_IPV6
        || flow.nw_proto() != 58
        || flow.tp_dst() != 0
        || flow.tp_src() != ND_ROUTER_SOLICIT
    {
        return Err(NoReply("not_router_solicit"));
    }
    let l4 = layers.l4.ok_or(NoReply("truncated"))?;
    let mut out = frame.get(..l4).ok_or(NoReply("truncated"))?.to_vec();
    out.extend_from_slice(&ra);
    let l3 = layers.l3;
    out[l3 + 4..l3 + 6].copy_from_slice(&(ra.len() as u16).to_be_bytes());
    let c = compose::csum6(&out, l3, 58, &out[l4..]);
    out[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    Ok((out, "advertise"))
}
