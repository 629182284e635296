//! `kaws cluster plan|apply|destroy|output` with the real Terraform and the
//! real AWS provider against moto, checked through the AWS API.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

/// The public topology, as every cluster was before topologies: each
/// server in a public subnet, SSH open to the bastion when asked.
#[test]
fn public_topology_applies_then_plan_is_clean_and_destroy_leaves_nothing() {
    apply_judge_destroy(
        "e2e",
        &["--topology", "public", "--ssh-cidr", "0.0.0.0/0"],
        Topology::Public,
    );
}

/// The private topology (the default): servers behind NAT, keys reached
/// through VPC endpoints, ingress through its own load balancer.
#[test]
fn private_topology_applies_then_plan_is_clean_and_destroy_leaves_nothing() {
    apply_judge_destroy("prv", &[], Topology::Private);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Topology {
    Public,
    Private,
}

fn apply_judge_destroy(c: &str, init: &[&str], topology: Topology) {
    let w = World::new();
    let zone = w.applyable_cluster(c, init);
    let settings =
        json(&std::fs::read_to_string(w.cluster_dir(c).join("terraform.tfvars.json")).unwrap());
    let expected = if topology == Topology::Public {
        "public"
    } else {
        "private"
    };
    assert_eq!(settings["topology"], expected, "{settings}");
    let started = std::time::Instant::now();

    let out = tf(
        &w,
        &["cluster", "apply", c, "--", "-auto-approve", "-no-color"],
    );
    assert!(out.status.success());
    assert!(
        w.cluster_dir(c).join("terraform.tfstate").is_file(),
        "state lives in the cluster directory"
    );
    let state = json(&std::fs::read_to_string(w.cluster_dir(c).join("terraform.tfstate")).unwrap());
    let instances_in_state: usize = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mode"] == "managed")
        .map(|r| r["instances"].as_array().map_or(0, |i| i.len()))
        .sum();
    eprintln!(
        "{topology:?} topology: {instances_in_state} resources applied in {:.0?}",
        started.elapsed()
    );

    // The network: one VPC with public subnets in at least two zones.
    let vpcs = json(&w.aws_ok(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=cidr,Values=10.0.0.0/16",
        &format!("Name=tag:Name,Values={c}"),
        "--output",
        "json",
    ]));
    let vpcs = vpcs["Vpcs"].as_array().unwrap();
    assert_eq!(vpcs.len(), 1, "{vpcs:?}");
    let vpc = vpcs[0]["VpcId"].as_str().unwrap().to_string();
    let subnets = json(&w.aws_ok(&[
        "ec2",
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--output",
        "json",
    ]));
    let zones: std::collections::BTreeSet<&str> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["AvailabilityZone"].as_str().unwrap())
        .collect();
    assert!(zones.len() >= 2, "{zones:?}");

    // The servers: a bastion and three etcd, all with the key pair.
    let inst = json(&w.aws_ok(&[
        "ec2",
        "describe-instances",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=instance-state-name,Values=running",
        "--output",
        "json",
    ]));
    let instances: Vec<&Value> = inst["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .collect();
    let role = |i: &Value| -> String {
        i["Tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .find(|t| t["Key"] == "Name")
                    .map(|t| t["Value"].as_str().unwrap().to_string())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    let count = |prefix: &str| {
        instances
            .iter()
            .filter(|i| role(i).starts_with(prefix))
            .count()
    };
    assert_eq!(
        count(&format!("{c}-bastion")),
        1,
        "{:?}",
        instances.iter().map(|i| role(i)).collect::<Vec<_>>()
    );
    assert_eq!(count(&format!("{c}-etcd-")), 3);
    for i in &instances {
        assert_eq!(
            i["KeyName"],
            format!("kaws-{c}").as_str(),
            "every server has the key pair"
        );
        // moto gives instances of an Auto Scaling group only the launch
        // template's user data, type, key and groups: their metadata
        // options are checked on the launch templates below.
        let in_asg = i["Tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["Key"] == "aws:autoscaling:groupName"));
        if !in_asg {
            assert_eq!(
                i["MetadataOptions"]["HttpTokens"],
                "required",
                "IMDSv2 on {}",
                role(i)
            );
            assert_eq!(i["MetadataOptions"]["HttpPutResponseHopLimit"], 1);
        }
    }

    // Two Auto Scaling groups, a network load balancer, both DNS records.
    let asgs = json(&w.aws_ok(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--output",
        "json",
    ]));
    let asgs: Vec<&Value> = asgs["AutoScalingGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["AutoScalingGroupName"].as_str().unwrap().contains(c))
        .collect();
    assert_eq!(asgs.len(), 2, "{asgs:?}");
    let lbs = json(&w.aws_ok(&["elbv2", "describe-load-balancers", "--output", "json"]));
    let in_vpc: Vec<&Value> = lbs["LoadBalancers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["VpcId"] == vpc.as_str())
        .collect();
    let expected_lbs = if topology == Topology::Private { 2 } else { 1 };
    assert_eq!(in_vpc.len(), expected_lbs, "{in_vpc:?}");
    for lb in &in_vpc {
        assert_eq!(lb["Type"], "network");
    }
    let records = json(&w.aws_ok(&[
        "route53",
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone,
        "--output",
        "json",
    ]));
    let names: Vec<&str> = records["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    for n in [
        format!("kubernetes.kaws-{c}.example.com."),
        format!("bastion.kaws-{c}.example.com."),
    ] {
        assert!(names.contains(&n.as_str()), "{n} in {names:?}");
    }

    // Launch templates: the key pair and IMDSv2; user data without any private key.
    let lts = json(&w.aws_ok(&["ec2", "describe-launch-templates", "--output", "json"]));
    let mut templates = 0;
    for lt in lts["LaunchTemplates"].as_array().unwrap() {
        let id = lt["LaunchTemplateId"].as_str().unwrap();
        let v = json(&w.aws_ok(&[
            "ec2",
            "describe-launch-template-versions",
            "--launch-template-id",
            id,
            "--output",
            "json",
        ]));
        let data = &v["LaunchTemplateVersions"][0]["LaunchTemplateData"];
        if !lt["LaunchTemplateName"].as_str().unwrap().contains(c) {
            continue;
        }
        templates += 1;
        assert_eq!(data["KeyName"], format!("kaws-{c}").as_str());
        assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
        assert_eq!(data["MetadataOptions"]["HttpPutResponseHopLimit"], 1);
        // What servers boot with is judged by tests/boot.rs (Ignition,
        // systemd, shellcheck, etcd); here: the raw bytes EC2 serves are an
        // Ignition config, not gzip, within the module's limit.
        let ud = b64decode(data["UserData"].as_str().unwrap_or(""));
        assert!(ud.starts_with(b"{\"ignition\""), "plain Ignition JSON");
        assert!(ud.len() <= 14 * 1024, "{} bytes", ud.len());
    }
    assert_eq!(templates, 2);

    // Security groups: nothing open to the internet but 22 on the bastion
    // and 80/443; no all-ports rule.
    let sgs = json(&w.aws_ok(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--output",
        "json",
    ]));
    let mut open = Vec::new();
    for sg in sgs["SecurityGroups"].as_array().unwrap() {
        let name = sg["GroupName"].as_str().unwrap().to_string();
        for p in sg["IpPermissions"].as_array().unwrap() {
            assert_ne!(p["IpProtocol"], "-1", "{name} has an all-ports rule: {p}");
            let world = p["IpRanges"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["CidrIp"] == "0.0.0.0/0");
            if world {
                open.push((
                    name.clone(),
                    p["FromPort"].as_i64().unwrap(),
                    p["ToPort"].as_i64().unwrap(),
                ));
            }
        }
    }
    for (name, from, to) in &open {
        assert_eq!(from, to, "{name}: a port range is open to the internet");
        assert!(
            [22, 80, 443].contains(from),
            "{name}: port {from} is open to the internet"
        );
        if *from == 22 {
            assert!(
                name.contains("bastion"),
                "only the bastion accepts SSH: {name}"
            );
        }
    }
    // SSH from outside only when asked (--ssh-cidr).
    assert_eq!(
        open.iter().any(|(_, p, _)| *p == 22),
        settings["ssh_cidr"] == "0.0.0.0/0",
        "{open:?}"
    );
    assert!(open.iter().any(|(_, p, _)| *p == 443));
    assert!(open.iter().any(|(_, p, _)| *p == 80));

    // IAM: each role decrypts only its own files, nobody the CA key.
    let roles = json(&w.aws_ok(&["iam", "list-roles", "--output", "json"]));
    let mut checked = 0;
    let mut read_back: Vec<(String, Value)> = Vec::new();
    let mut decrypts: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for r in roles["Roles"].as_array().unwrap() {
        let name = r["RoleName"].as_str().unwrap();
        if !name.contains(c) {
            continue;
        }
        // This cluster's own server roles (another test's cluster may share
        // moto and a name prefix).
        let own_role = ["controller", "worker", "etcd"]
            .into_iter()
            .find(|role| name == format!("{c}-{role}"));
        let pols = json(&w.aws_ok(&[
            "iam",
            "list-role-policies",
            "--role-name",
            name,
            "--output",
            "json",
        ]));
        for p in pols["PolicyNames"].as_array().unwrap() {
            let doc = w.aws_ok(&[
                "iam",
                "get-role-policy",
                "--role-name",
                name,
                "--policy-name",
                p.as_str().unwrap(),
                "--output",
                "json",
            ]);
            assert!(
                !doc.contains("ca-key.pem"),
                "{name} may decrypt the CA key: {doc}"
            );
            let mut policy = json(&doc)["PolicyDocument"].clone();
            if let Some(text) = policy.as_str() {
                policy = json(text);
            }
            for st in policy["Statement"].as_array().unwrap() {
                if st["Action"].to_string().contains("kms:Decrypt") {
                    let files = &st["Condition"]["StringEquals"]["kms:EncryptionContext:kaws:file"];
                    let files: Vec<String> = match files {
                        Value::String(f) => vec![f.clone()],
                        v => v
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|f| f.as_str().unwrap().to_string())
                            .collect(),
                    };
                    if let Some(role) = own_role {
                        decrypts.entry(role.to_string()).or_default().extend(files);
                    }
                }
            }
            if own_role.is_some() {
                read_back.push((format!("{name}/{}", p.as_str().unwrap()), policy));
            }
            if doc.contains("kms:Decrypt") {
                assert!(
                    doc.contains("kms:EncryptionContext:kaws:file"),
                    "{name}: {doc}"
                );
                assert!(
                    doc.contains("kms:EncryptionContext:kaws:cluster"),
                    "{name}: {doc}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 3,
        "controller, worker and etcd policies allow kms:Decrypt with conditions"
    );
    // The docs' "who may decrypt which file" table is what IAM holds.
    let mut docs = docs_decrypt_table();
    assert_eq!(
        docs.remove("primary-administrators"),
        Some(
            ["ca-key.pem", "etcd-ca-key.pem", "front-proxy-ca-key.pem"]
                .map(String::from)
                .into()
        ),
        "no server decrypts a CA key"
    );
    assert_eq!(
        decrypts, docs,
        "IAM role policies against docs/concepts/cluster.md"
    );
    // Issue 12: a worker decrypts its bootstrap token and the keys of
    // kube-proxy and flannel, nothing a master runs with.
    assert_eq!(
        decrypts["worker"],
        [
            "bootstrap-token-key.pem",
            "flannel-key.pem",
            "kube-proxy-key.pem"
        ]
        .map(String::from)
        .into()
    );
    for master_only in &decrypts["controller"] {
        assert!(
            master_only == "bootstrap-token-key.pem" || !decrypts["worker"].contains(master_only),
            "the worker may decrypt {master_only}"
        );
    }
    // Parliament, the IAM policy linter, finds nothing in the role
    // policies as IAM returns them.
    let findings = parliament(&read_back);
    assert_eq!(findings.len(), 3, "{findings:?}");
    for (name, f) in &findings {
        assert!(f.is_empty(), "{name}: {f:?}");
    }

    match topology {
        Topology::Private => judge_private(&w, c, &vpc, &instances, &settings),
        Topology::Public => judge_public(&w, &vpc, &instances),
    }

    // A second plan finds nothing to do.
    let out = tf(
        &w,
        &[
            "cluster",
            "plan",
            c,
            "--",
            "-detailed-exitcode",
            "-no-color",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "plan after apply must be clean");

    // Outputs, as text and as JSON.
    let out = tf(&w, &["cluster", "output", c]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains(&format!("https://kubernetes.kaws-{c}.example.com")),
        "{}",
        stdout(&out)
    );
    let out = tf(&w, &["cluster", "output", c, "--output", "json"]);
    let v = json(&stdout(&out));
    assert_eq!(
        v["api_endpoint"]["value"],
        format!("https://kubernetes.kaws-{c}.example.com").as_str()
    );

    // Destroy leaves no kaws resource behind.
    let out = tf(
        &w,
        &["cluster", "destroy", c, "--", "-auto-approve", "-no-color"],
    );
    assert!(out.status.success());
    let vpcs = json(&w.aws_ok(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        &format!("Name=tag:Name,Values={c}"),
        "--output",
        "json",
    ]));
    assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 0);
    let inst = json(&w.aws_ok(&[
        "ec2",
        "describe-instances",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=instance-state-name,Values=running,pending",
        "--output",
        "json",
    ]));
    assert_eq!(inst["Reservations"].as_array().unwrap().len(), 0);
    // NAT gateways and endpoints linger as "deleted" in AWS's answers, as they do in AWS.
    for (what, key, state_key) in [
        ("describe-nat-gateways", "NatGateways", "State"),
        ("describe-vpc-endpoints", "VpcEndpoints", "State"),
    ] {
        let v = json(&w.aws_ok(&["ec2", what, "--output", "json"]));
        let left: Vec<&Value> = v[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["VpcId"] == vpc.as_str() && x[state_key] != "deleted")
            .collect();
        assert!(left.is_empty(), "{what}: {left:?}");
    }
    let eips = json(&w.aws_ok(&["ec2", "describe-addresses", "--output", "json"]));
    let left: Vec<&Value> = eips["Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["Tags"].as_array().is_some_and(|t| {
                t.iter().any(|t| {
                    t["Value"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(&format!("{c}-nat"))
                })
            })
        })
        .collect();
    assert!(left.is_empty(), "addresses left: {left:?}");
    let lbs = json(&w.aws_ok(&["elbv2", "describe-load-balancers", "--output", "json"]));
    assert!(!lbs["LoadBalancers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["VpcId"] == vpc.as_str()));
    let state = json(&std::fs::read_to_string(w.cluster_dir(c).join("terraform.tfstate")).unwrap());
    assert_eq!(
        state["resources"].as_array().map(|r| r.len()).unwrap_or(0),
        0
    );
}

#[test]
fn missing_terraform_is_one_clear_sentence() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("notf", &key, &[]).status.success());
    let out = w
        .kaws()
        .env("PATH", "/nonexistent")
        .args(["cluster", "plan", "notf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("terraform is not installed"),
        "{}",
        stderr(&out)
    );
}

/// `--state-bucket`: the state lives in S3 with S3-native locking, and the
/// lock is released after the apply.
#[test]
fn s3_backend_applies_and_releases_its_lock() {
    let w = World::new();
    w.aws_ok(&["s3api", "create-bucket", "--bucket", "kaws-state-e2e"]);
    w.applyable_cluster("s3", &["--state-bucket", "kaws-state-e2e"]);
    // A targeted apply: the backend and its lock are what this test is about.
    let out = tf(
        &w,
        &[
            "cluster",
            "apply",
            "s3",
            "--",
            "-auto-approve",
            "-no-color",
            "-target=module.kaws.aws_vpc.network",
        ],
    );
    assert!(out.status.success());
    assert!(
        !w.cluster_dir("s3").join("terraform.tfstate").exists(),
        "no local state"
    );
    let objects = w.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "kaws-state-e2e",
        "--query",
        "Contents[].Key",
        "--output",
        "text",
    ]);
    assert!(objects.contains("kaws/s3/terraform.tfstate"), "{objects}");
    assert!(
        !objects.contains(".tflock"),
        "the lock was released: {objects}"
    );
    let state = w.aws_ok(&[
        "s3",
        "cp",
        "s3://kaws-state-e2e/kaws/s3/terraform.tfstate",
        "-",
    ]);
    assert!(state.contains("aws_vpc"), "the state records the VPC");
    assert!(!state.contains("PRIVATE KEY"));
    let out = tf(
        &w,
        &[
            "cluster",
            "destroy",
            "s3",
            "--",
            "-auto-approve",
            "-no-color",
            "-target=module.kaws.aws_vpc.network",
        ],
    );
    assert!(out.status.success());
    let objects = w.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "kaws-state-e2e",
        "--query",
        "Contents[].Key",
        "--output",
        "text",
    ]);
    assert!(!objects.contains(".tflock"), "{objects}");
}

/// `terraform init` runs on first use and when the entry point changes, not before every command.
#[test]
fn init_runs_only_when_needed_and_terraform_source_is_honoured() {
    let w = World::new();
    let out = w
        .kaws_in(w.tmp.path())
        .args([
            "init",
            "other",
            "--terraform-source",
            "../../terraform/modules/kaws",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.tmp.path().join("other/kaws.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["terraform_source"], "../../terraform/modules/kaws");
    let out = w
        .kaws_in(w.tmp.path())
        .args(["init", "bad", "--terraform-source", "x\" { }"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let key = w.kms_key();
    assert!(w
        .cluster_init("lazy", &key, &["--ami", "ami-12345678"])
        .status
        .success());
    let plan_with = |w: &World, extra: &[&str]| {
        let mut args = vec!["-v", "cluster", "plan", "lazy"];
        args.extend(extra);
        args.extend(["--", "-no-color", "-refresh=false", "-lock=false"]);
        w.kaws_tf().args(args).output().unwrap()
    };
    let plan = |w: &World| plan_with(w, &[]);
    let first = plan(&w);
    assert!(
        stderr(&first).contains("running terraform init"),
        "{}",
        stderr(&first)
    );
    let second = plan(&w);
    assert!(
        stderr(&second).contains("terraform init not needed"),
        "{}",
        stderr(&second)
    );
    // A changed entry point is refused: kaws runs Terraform only over the
    // main.tf.json it writes (tests/hostile.rs has the attacks).
    let main = w.cluster_dir("lazy").join("main.tf.json");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{text}\n")).unwrap();
    assert_eq!(plan(&w).status.code(), Some(3));
    std::fs::write(&main, &text).unwrap();
    // A changed module, reviewed and accepted, means init again.
    let versions = w.repo.join("terraform/modules/kaws/versions.tf");
    let text = std::fs::read_to_string(&versions).unwrap();
    std::fs::write(&versions, format!("{text}\n# a comment\n")).unwrap();
    let third = plan_with(&w, &["--accept-changes"]);
    assert!(
        stderr(&third).contains("running terraform init"),
        "{}",
        stderr(&third)
    );
}

/// Ctrl-C goes to the whole foreground process group: Terraform stops
/// cleanly, kaws waits for it and exits with Terraform's status, and no
/// state lock is left behind.
#[test]
fn ctrl_c_reaches_terraform_and_kaws_waits_for_it() {
    use std::os::unix::process::CommandExt;
    let w = World::new();
    w.applyable_cluster("int", &[]);
    // Initialise first, so the interrupt lands in the apply itself.
    assert!(tf(
        &w,
        &[
            "cluster",
            "plan",
            "int",
            "--",
            "-no-color",
            "-refresh=false"
        ]
    )
    .status
    .success());
    let child = w
        .kaws_tf()
        .args([
            "cluster",
            "apply",
            "int",
            "--",
            "-auto-approve",
            "-no-color",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Let the apply start creating resources (the NLB alone takes a minute).
    std::thread::sleep(std::time::Duration::from_secs(12));
    let pgid = child.id();
    let sent = std::process::Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    // kaws did not die of the signal: it waited and passed on Terraform's status.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "kaws was killed by the signal: {text}"
    );
    assert!(
        text.contains("Interrupt received") || text.contains("interrupted"),
        "{text}"
    );
    let dir = w.cluster_dir("int");
    assert!(
        !dir.join(".terraform.tfstate.lock.info").exists(),
        "the state lock was released"
    );
    // Whatever Terraform had written of the state is whole JSON.
    if let Ok(text) = std::fs::read_to_string(dir.join("terraform.tfstate")) {
        let state: serde_json::Value = serde_json::from_str(&text).expect("the state is whole");
        assert!(state["resources"].is_array());
    }
    // The lock is free: the destroy goes through.
    let out = tf(
        &w,
        &[
            "cluster",
            "destroy",
            "int",
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success());
}

/// `--state-bucket` writes an S3 backend with `use_lockfile`, which needs
/// Terraform 1.10: the entry point says so, and kaws refuses an older
/// Terraform before `terraform init` with one clear sentence (exit 7).
#[test]
fn state_bucket_needs_terraform_1_10() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w
        .cluster_init("old", &key, &["--state-bucket", "some-bucket"])
        .status
        .success());
    assert!(w.cluster_init("local", &key, &[]).status.success());
    let main = |c: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(w.cluster_dir(c).join("main.tf.json")).unwrap())
            .unwrap()
    };
    assert_eq!(main("old")["terraform"]["required_version"], ">= 1.10");
    assert_eq!(main("local")["terraform"]["required_version"], ">= 1.5");

    let fake = w.tmp.path().join("terraform-1.9");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo '{\"terraform_version\":\"1.9.8\"}'; exit 0; fi\necho \"unexpected: $*\" >&2; exit 99\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &fake)
        .args(["cluster", "plan", "old"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Terraform 1.9.8") && stderr(&out).contains("1.10"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("unexpected"), "init never ran");
    // Local state has no such need: the old Terraform is run.
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &fake)
        .args(["cluster", "plan", "local"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("unexpected: init"),
        "{}",
        stderr(&out)
    );
}

/// Names AWS limits: a 63-character cluster name (the longest kaws accepts)
/// plans with IAM names within 64 characters and load balancer names within
/// 32 that do not end in "-"; `--nat single` plans one NAT gateway for every
/// zone's route; a Kubernetes version the module has no pins for is refused
/// at plan time, naming the pinned ones.
#[test]
fn long_cluster_names_plan_and_unpinned_versions_are_refused() {
    let w = World::new();
    let key = w.kms_key();
    let long = format!("l{}", "o".repeat(52)) + "ng-cluster";
    assert_eq!(long.len(), 63);
    let out = w.cluster_init(&long, &key, &["--ami", "ami-12345678", "--nat", "single"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tf(
        &w,
        &[
            "cluster",
            "plan",
            &long,
            "--",
            "-no-color",
            "-refresh=false",
            "-lock=false",
            "-out=plan.bin",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut show = std::process::Command::new("terraform");
    w.env(&mut show);
    let show = show
        .env("TF_CLI_CONFIG_FILE", w.tf_config())
        .current_dir(w.cluster_dir(&long))
        .args(["show", "-json", "plan.bin"])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let plan = json(&stdout(&show));
    let mut seen = 0;
    let mut counts = std::collections::BTreeMap::new();
    for rc in plan["resource_changes"].as_array().unwrap() {
        *counts
            .entry(rc["type"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        let name = rc["change"]["after"]["name"].as_str().unwrap_or_default();
        let limit = match rc["type"].as_str().unwrap() {
            "aws_iam_role" | "aws_iam_instance_profile" => 64,
            "aws_lb" | "aws_lb_target_group" => 32,
            _ => continue,
        };
        seen += 1;
        assert!(
            !name.is_empty() && name.len() <= limit && !name.ends_with('-'),
            "{}: {name:?}",
            rc["address"]
        );
    }
    assert_eq!(
        seen,
        3 + 3 + 2 + 3,
        "three roles, three profiles, the API NLB and its group, the ingress NLB and its two groups"
    );
    assert_eq!(counts["aws_nat_gateway"], 1, "--nat single: {counts:?}");
    assert_eq!(counts["aws_eip"], 1, "{counts:?}");
    assert_eq!(
        counts["aws_subnet"],
        2 * counts["aws_route_table"] - 2,
        "{counts:?}"
    );
    assert_eq!(
        counts["aws_route"],
        1 + counts["aws_subnet"] / 2,
        "{counts:?}"
    );

    let out = w.cluster_init(
        "old",
        &key,
        &["--ami", "ami-12345678", "--kubernetes-version", "v1.35.3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tf(
        &w,
        &[
            "cluster",
            "plan",
            "old",
            "--",
            "-no-color",
            "-refresh=false",
            "-lock=false",
        ],
    );
    assert!(!out.status.success());
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        err.contains("kubernetes_version v1.35.3 has no pinned checksums")
            && err.contains("v1.35.4"),
        "{err}"
    );
}

fn name_tag(v: &Value) -> String {
    v["Tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["Key"] == "Name"))
        .and_then(|t| t["Value"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn ec2_list(w: &World, what: &str, key: &str, vpc: &str) -> Vec<Value> {
    let filter = format!("Name=vpc-id,Values={vpc}");
    // describe-nat-gateways spells its option --filter.
    let flag = if what == "describe-nat-gateways" {
        "--filter"
    } else {
        "--filters"
    };
    let v = json(&w.aws_ok(&["ec2", what, flag, &filter, "--output", "json"]));
    v[key].as_array().unwrap().clone()
}

/// Subnets by id, with their zone and whether instances get a public address.
fn subnets(w: &World, vpc: &str) -> Vec<Value> {
    ec2_list(w, "describe-subnets", "Subnets", vpc)
}

/// The route table associated with a subnet, and its default route's target.
fn default_route(tables: &[Value], subnet: &str) -> (String, Value) {
    let table = tables
        .iter()
        .find(|t| {
            t["Associations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["SubnetId"] == subnet)
        })
        .unwrap_or_else(|| panic!("{subnet} has no route table of its own"));
    let route = table["Routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["DestinationCidrBlock"] == "0.0.0.0/0")
        .unwrap_or_else(|| panic!("{subnet}: no default route in {table}"))
        .clone();
    (table["RouteTableId"].as_str().unwrap().to_string(), route)
}

/// The public topology: every subnet public and every server with a
/// public address; no NAT gateway, endpoint or second load balancer.
fn judge_public(w: &World, vpc: &str, instances: &[&Value]) {
    let subnets = subnets(w, vpc);
    assert!(subnets.len() >= 2);
    let tables = ec2_list(w, "describe-route-tables", "RouteTables", vpc);
    for s in &subnets {
        assert_eq!(s["MapPublicIpOnLaunch"], true, "{s}");
        let (_, route) = default_route(&tables, s["SubnetId"].as_str().unwrap());
        assert!(
            route["GatewayId"].as_str().unwrap().starts_with("igw-"),
            "{route}"
        );
    }
    for i in instances {
        assert!(i["PublicIpAddress"].is_string(), "{}", name_tag(i));
    }
    assert!(ec2_list(w, "describe-nat-gateways", "NatGateways", vpc).is_empty());
    assert!(ec2_list(w, "describe-vpc-endpoints", "VpcEndpoints", vpc).is_empty());
}

/// The private topology, read back through EC2, ELBv2, Auto Scaling and IAM.
fn judge_private(w: &World, c: &str, vpc: &str, instances: &[&Value], settings: &Value) {
    // Per zone, one public and one private subnet; instances in private
    // ones get no public address.
    let subnets = subnets(w, vpc);
    let public: Vec<&Value> = subnets
        .iter()
        .filter(|s| name_tag(s).contains("-public-"))
        .collect();
    let private: Vec<&Value> = subnets
        .iter()
        .filter(|s| name_tag(s).contains("-private-"))
        .collect();
    assert_eq!(public.len() + private.len(), subnets.len(), "{subnets:?}");
    assert!(public.len() >= 2, "{subnets:?}");
    let zones = |v: &[&Value]| -> Vec<String> {
        let mut z: Vec<String> = v
            .iter()
            .map(|s| s["AvailabilityZone"].as_str().unwrap().to_string())
            .collect();
        z.sort();
        z
    };
    assert_eq!(zones(&public), zones(&private), "one of each per zone");
    let mut distinct = zones(&public);
    distinct.dedup();
    assert_eq!(distinct.len(), public.len(), "one public subnet per zone");
    for s in &private {
        assert_eq!(s["MapPublicIpOnLaunch"], false, "{s}");
    }
    let public_ids: Vec<&str> = public
        .iter()
        .map(|s| s["SubnetId"].as_str().unwrap())
        .collect();
    let private_ids: Vec<&str> = private
        .iter()
        .map(|s| s["SubnetId"].as_str().unwrap())
        .collect();
    let zone_of = |id: &str| -> String {
        subnets.iter().find(|s| s["SubnetId"] == id).unwrap()["AvailabilityZone"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // NAT gateways: one per zone (the default), each in that zone's public subnet.
    let nats = ec2_list(w, "describe-nat-gateways", "NatGateways", vpc);
    assert_eq!(
        nats.len(),
        public.len(),
        "one NAT gateway per zone: {nats:?}"
    );
    for n in &nats {
        assert_eq!(n["State"], "available");
        assert!(public_ids.contains(&n["SubnetId"].as_str().unwrap()), "{n}");
    }

    // Routes: public subnets to the internet gateway; each private subnet to
    // its own zone's NAT gateway, and to S3 through the gateway endpoint.
    let tables = ec2_list(w, "describe-route-tables", "RouteTables", vpc);
    for id in &public_ids {
        let (_, route) = default_route(&tables, id);
        assert!(
            route["GatewayId"]
                .as_str()
                .unwrap_or("")
                .starts_with("igw-"),
            "{id}: {route}"
        );
    }
    let endpoints = ec2_list(w, "describe-vpc-endpoints", "VpcEndpoints", vpc);
    let s3 = endpoints
        .iter()
        .find(|e| e["ServiceName"] == "com.amazonaws.us-east-1.s3")
        .expect("an S3 endpoint");
    let kms = endpoints
        .iter()
        .find(|e| e["ServiceName"] == "com.amazonaws.us-east-1.kms")
        .expect("a KMS endpoint");
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    let mut private_tables = Vec::new();
    for id in &private_ids {
        let (table, route) = default_route(&tables, id);
        let nat = route["NatGatewayId"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {route}"));
        let nat = nats.iter().find(|n| n["NatGatewayId"] == nat).unwrap();
        assert_eq!(
            zone_of(nat["SubnetId"].as_str().unwrap()),
            zone_of(id),
            "{id}: its zone's NAT gateway"
        );
        let t = tables
            .iter()
            .find(|t| t["RouteTableId"] == table.as_str())
            .unwrap();
        assert!(
            t["Routes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["GatewayId"] == s3["VpcEndpointId"]
                    && r["DestinationPrefixListId"].is_string()),
            "{id}: S3 through the gateway endpoint: {t}"
        );
        private_tables.push(table);
    }

    // Servers: the bastion alone in a public subnet with a public address;
    // every etcd server, master and node in a private one without.
    let mut roles = std::collections::BTreeSet::new();
    for i in instances {
        let name = name_tag(i);
        let subnet = i["SubnetId"].as_str().unwrap();
        if name == format!("{c}-bastion") {
            assert!(public_ids.contains(&subnet), "bastion in a public subnet");
            assert!(
                i["PublicIpAddress"].is_string(),
                "the bastion has a public address"
            );
        } else {
            assert!(private_ids.contains(&subnet), "{name} in a private subnet");
            assert!(
                i["PublicIpAddress"].is_null(),
                "{name} has a public address: {}",
                i["PublicIpAddress"]
            );
            roles.insert(name.split('-').nth(1).unwrap_or_default().to_string());
        }
    }
    assert_eq!(
        roles.into_iter().collect::<Vec<_>>(),
        ["controller", "etcd", "worker"],
        "etcd servers, masters and nodes are all checked"
    );

    // Load balancers: both in the public subnets; the ingress one forwards
    // 80 and 443 to target groups of the nodes' Auto Scaling group.
    let lbs = json(&w.aws_ok(&["elbv2", "describe-load-balancers", "--output", "json"]));
    let mut ingress = None;
    for lb in lbs["LoadBalancers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["VpcId"] == vpc)
    {
        let mut subnets: Vec<&str> = lb["AvailabilityZones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|z| z["SubnetId"].as_str().unwrap())
            .collect();
        subnets.sort();
        let mut expected = public_ids.clone();
        expected.sort();
        assert_eq!(
            subnets, expected,
            "{} in the public subnets",
            lb["LoadBalancerName"]
        );
        if lb["LoadBalancerName"] == format!("{c}-ingress").as_str() {
            ingress = Some(lb.clone());
        }
    }
    let ingress = ingress.expect("an ingress load balancer");
    let listeners = json(&w.aws_ok(&[
        "elbv2",
        "describe-listeners",
        "--load-balancer-arn",
        ingress["LoadBalancerArn"].as_str().unwrap(),
        "--output",
        "json",
    ]));
    let mut forwarded = std::collections::BTreeMap::new();
    for l in listeners["Listeners"].as_array().unwrap() {
        assert_eq!(l["Protocol"], "TCP");
        let action = &l["DefaultActions"][0];
        assert_eq!(action["Type"], "forward");
        forwarded.insert(
            l["Port"].as_i64().unwrap(),
            action["TargetGroupArn"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(forwarded.keys().copied().collect::<Vec<_>>(), [80, 443]);
    let asgs = json(&w.aws_ok(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--output",
        "json",
    ]));
    let workers = asgs["AutoScalingGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["AutoScalingGroupName"] == format!("{c}-worker").as_str())
        .expect("the nodes' group");
    let mut attached: Vec<String> = workers["TargetGroupARNs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    attached.sort();
    let mut wanted: Vec<String> = forwarded.values().cloned().collect();
    wanted.sort();
    assert_eq!(
        attached, wanted,
        "the ingress target groups are the nodes' group's"
    );
    let nodes: Vec<&str> = workers["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    assert!(!nodes.is_empty());
    for (port, tg) in &forwarded {
        let health = json(&w.aws_ok(&[
            "elbv2",
            "describe-target-health",
            "--target-group-arn",
            tg,
            "--output",
            "json",
        ]));
        let targets: Vec<&str> = health["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["Target"]["Id"].as_str().unwrap())
            .collect();
        for n in &nodes {
            assert!(
                targets.contains(n),
                "node {n} is a target on {port}: {targets:?}"
            );
        }
    }

    // Endpoints: S3 on the private route tables, KMS in the private subnets
    // with private DNS, each policy naming only this cluster's bucket and key.
    let bucket = w.aws_ok(&[
        "s3api",
        "list-buckets",
        "--query",
        &format!("Buckets[?starts_with(Name, 'kaws-{c}-')].Name"),
        "--output",
        "text",
    ]);
    assert!(
        !bucket.is_empty() && !bucket.contains(char::is_whitespace),
        "{bucket:?}"
    );
    let key_arn = w.aws_ok(&[
        "kms",
        "describe-key",
        "--key-id",
        settings["kms_key_id"].as_str().unwrap(),
        "--query",
        "KeyMetadata.Arn",
        "--output",
        "text",
    ]);
    assert_eq!(s3["VpcEndpointType"], "Gateway");
    let mut on: Vec<&str> = s3["RouteTableIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    on.sort();
    private_tables.sort();
    assert_eq!(
        on, private_tables,
        "the S3 endpoint serves the private route tables, only"
    );
    let policy = json(s3["PolicyDocument"].as_str().unwrap());
    let mut resources = Vec::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Action"], "s3:GetObject", "read only: {st}");
        resources.push(st["Resource"].as_str().unwrap().to_string());
    }
    resources.sort();
    // The cluster's own bucket, and registry.k8s.io's layer bucket in this
    // region, where image pulls from AWS are redirected (docs/concepts/topologies.md).
    assert_eq!(
        resources,
        [
            format!("arn:aws:s3:::{bucket}/*"),
            "arn:aws:s3:::prod-registry-k8s-io-us-east-1/*".to_string()
        ],
        "{policy}"
    );
    assert_eq!(kms["VpcEndpointType"], "Interface");
    assert_eq!(
        kms["PrivateDnsEnabled"], true,
        "kms.<region>.amazonaws.com resolves inside the VPC"
    );
    let mut in_subnets: Vec<&str> = kms["SubnetIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    in_subnets.sort();
    let mut expected = private_ids.clone();
    expected.sort();
    assert_eq!(in_subnets, expected);
    let policy = json(kms["PolicyDocument"].as_str().unwrap());
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Action"], "kms:Decrypt");
    assert_eq!(
        statements[0]["Resource"],
        key_arn.as_str(),
        "only the cluster's key"
    );
    assert_eq!(
        statements[0]["Condition"]["StringEquals"]["kms:EncryptionContext:kaws:cluster"], c,
        "only the cluster's encryption context"
    );

    // The roles decrypt and read only through these endpoints.
    for role in ["etcd", "controller", "worker"] {
        let doc = w.aws_ok(&[
            "iam",
            "get-role-policy",
            "--role-name",
            &format!("{c}-{role}"),
            "--policy-name",
            "kaws-keys",
            "--output",
            "json",
        ]);
        for e in [&s3, &kms] {
            let id = e["VpcEndpointId"].as_str().unwrap();
            assert!(
                doc.contains("aws:SourceVpce") && doc.contains(id),
                "{role}: {id} in {doc}"
            );
        }
    }
}

/// An older kaws wrote the entry point as HCL `main.tf` (some even without
/// topologies) and no `pki.auto.tfvars.json`. Without Terraform, plan writes
/// nothing; with it, plan replaces `main.tf` with the `main.tf.json` this
/// kaws writes, writes the table's variables, says so, and never runs the
/// old file. `kaws init`'s old `.gitignore` line is named too.
#[test]
fn an_older_entry_point_is_replaced_by_main_tf_json_and_plan_says_so() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("old", &key, &[]).status.success());
    let d = w.cluster_dir("old");
    let json = std::fs::read(d.join("main.tf.json")).unwrap();
    let vars = std::fs::read(d.join("pki.auto.tfvars.json")).unwrap();
    std::fs::remove_file(d.join("main.tf.json")).unwrap();
    std::fs::remove_file(d.join("pki.auto.tfvars.json")).unwrap();
    // Never run: a resource Terraform would refuse to plan.
    std::fs::write(
        d.join("main.tf"),
        "module \"kaws\" {\n  source = \"../../terraform/modules/kaws\"\n}\nthis is not HCL\n",
    )
    .unwrap();
    let gitignore = w.repo.join(".gitignore");
    let ignore = std::fs::read_to_string(&gitignore).unwrap();
    assert!(
        !ignore.lines().any(|l| l == ".terraform.lock.hcl"),
        "{ignore}"
    );
    std::fs::write(&gitignore, format!("{ignore}.terraform.lock.hcl\n")).unwrap();
    let before = w.snapshot();
    let out = w
        .kaws()
        .env("PATH", "/nonexistent")
        .args(["cluster", "plan", "old", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(before == w.snapshot(), "nothing written without Terraform");

    // A stand-in Terraform that records what it was asked.
    let log = w.tmp.path().join("tf.log");
    let fake = w.tmp.path().join("terraform-fake");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nls >> {}\nmkdir -p .terraform\nexit 0\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &fake)
        .args(["cluster", "plan", "old", "--accept-changes"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("replaced")
            && err.contains("main.tf.json")
            && err.contains("pki.auto.tfvars.json"),
        "{err}"
    );
    assert!(
        err.contains(".terraform.lock.hcl") && err.contains("commit"),
        "the old .gitignore line is named: {err}"
    );
    assert!(!d.join("main.tf").exists());
    assert_eq!(std::fs::read(d.join("main.tf.json")).unwrap(), json);
    assert_eq!(std::fs::read(d.join("pki.auto.tfvars.json")).unwrap(), vars);
    let ran = std::fs::read_to_string(&log).unwrap();
    assert!(ran.contains("init") && ran.contains("plan"), "{ran}");
    assert!(
        !ran.lines().any(|l| l == "main.tf"),
        "Terraform never saw main.tf: {ran}"
    );
    // The next plan has nothing to replace.
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &fake)
        .args(["cluster", "plan", "old"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("replaced"), "{}", stderr(&out));
}
